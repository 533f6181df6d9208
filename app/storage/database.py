"""Database engine and sessions.

SQLite (the embedded default) gets WAL, a busy timeout, foreign keys, and write
transactions begun ``IMMEDIATE``: SQLite has no row locks, so a transaction that would
read and then write must take the write lock up front, or two of them deadlock on upgrade.
A writer that finds the lock held looks again every 50 µs-1 ms until the busy timeout
(``_begin_immediate_soon``), not through SQLite's handler, which sleeps 1, 2, 5, 10 ms...
Read-only work uses :func:`Database.read_session`, which begins ``DEFERRED``, or, for a
statement that names tables, :func:`Database.read_connection` (no ORM session; rolled back
at its end).

PostgreSQL connections time out instead of hanging: a connect gives up after
:data:`PG_CONNECT_TIMEOUT_SECONDS`, unacknowledged traffic (a server that vanished
without closing the socket) after :data:`PG_TCP_USER_TIMEOUT_MS`, and a wait for a
pooled connection after :data:`POOL_TIMEOUT_SECONDS`; pooled connections are pinged
before use, so after a database restart the first statement reconnects. The errors of
a database that is away (or, on SQLite, locked past the busy timeout) are
:data:`UNAVAILABLE`: the API answers them 503 + Retry-After, workers retry them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_SECONDS = 5
PG_TCP_USER_TIMEOUT_MS = 15_000
POOL_TIMEOUT_SECONDS = 10.0

# A database that is down, restarting, unreachable, or (SQLite) still locked after the
# busy timeout: nothing is wrong with the request, retrying later will do.
UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


def brief(exc: BaseException) -> str:
    """The first line of an error's message, for a log line (SQLAlchemy's run on with
    the statement and a link)."""
    return str(exc).partition("\n")[0]


def _install_sqlite_pragmas(engine: Engine, foreign_keys: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode != "IMMEDIATE":
            connection.exec_driver_sql(f"BEGIN {mode}")
            return
        raw = connection.connection.driver_connection
        try:
            raw.execute("PRAGMA busy_timeout=0")
            if not _begin_immediate_soon(raw):
                # Still busy after the busy timeout, or another error: SQLAlchemy raises
                # it, wrapped as for any statement (busy_timeout 0: at once).
                connection.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            try:
                raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            except sqlite3.Error:  # a broken connection: not put back in the pool
                connection.invalidate()


_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _begin_immediate_soon(dbapi_connection: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE``, looking at a busy write lock again every 50 µs-1 ms until
    :data:`SQLITE_BUSY_TIMEOUT_MS` has passed; False then, or on any other error (the
    caller raises it). The connection's own busy timeout is 0 meanwhile.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15 ms... between its looks, while the
    worker's transactions (a claim, a trial's ending) hold the lock 1-3 ms: a writer that
    finds the lock held overslept it by a few milliseconds, ~0.1-0.2 s of each worker's
    time in a halving sweep of the benchmark, and a long waiter lost the lock to every
    newcomer (BENCHMARKS.md §9).
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 50e-6
    while True:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code
            if code not in _BUSY:
                return False
            if time.monotonic() >= deadline:
                return False
        time.sleep(pause)
        pause = min(2 * pause, 1e-3)


def make_engine(url: str, *, sqlite_foreign_keys: bool = True) -> Engine:
    """An engine for ``url``; SQLite URLs get the pragmas and IMMEDIATE writes.

    ``sqlite_foreign_keys=False`` is for migrations only: SQLite alters a table by copying
    it and dropping the original, and with foreign keys on, that drop would run the
    ``ON DELETE`` actions of the rows referencing it (``SET NULL`` on every job's dataset).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _install_sqlite_pragmas(engine, sqlite_foreign_keys)
        return engine
    connect_args = {
        "connect_timeout": PG_CONNECT_TIMEOUT_SECONDS,
        "tcp_user_timeout": PG_TCP_USER_TIMEOUT_MS,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args=connect_args,
    )


class Database:
    """One engine and its session factories; one instance per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        read_bind = (
            self.engine.execution_options(sqlite_begin="DEFERRED")
            if self.is_sqlite
            else self.engine
        )
        self._read_bind = read_bind
        self._read_sessions = sessionmaker(read_bind, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: commits on success, rolls back on any error."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only transaction (no write lock on SQLite)."""
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read-only transaction on a bare connection, rolled back at the end: the
        cheapest read (no ORM session), for statements that name tables, such as an
        idle worker's look at the queue (~200 µs against a session's ~450)."""
        with self._read_bind.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
