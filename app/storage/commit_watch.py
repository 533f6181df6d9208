"""Waiting for new work in the database, for an idle worker.

SQLite: ``PRAGMA data_version`` read on a connection changes whenever any other
connection, in any process, has committed since the last read; reading it takes no lock
and costs a few microseconds. A commit in WAL mode writes to the ``-wal`` file, which Linux
reports through inotify, so an idle worker sleeps in ``select`` on an inotify descriptor
watching that file (no CPU at all while nothing is written). The write of the frames comes
a little before the commit is visible (the writer then updates the WAL index, through
shared memory, which inotify does not see; with ``synchronous=FULL`` after an fsync), so
after a write the watch reads data_version every :data:`HOT_TICK_SECONDS` for
:data:`HOT_SECONDS` before it sleeps long again. Without inotify (not Linux, or no
``-wal``: not WAL mode) there is nothing cheap to watch and a wait is the poll interval.

PostgreSQL: migration 0011's trigger sends a NOTIFY on :data:`CHANNEL` at the commit of
any transaction that made a job row queued; the watch LISTENs on a connection of its own
and a wait ends at the first notification. A lost connection is opened again at most
every :data:`RELISTEN_SECONDS`; meanwhile waits are plain.

Either way a sweep posted to an idle server starts within a few milliseconds instead of
up to a poll interval (``BACKPROP_POLL_SECONDS``, 0.2 s) later, and the poll interval
stays the upper bound of a wait: the watch only ends waits early. ``stopping`` is looked
at every :data:`STOP_CHECK_SECONDS` at least (Python resumes ``select`` after a signal's
handler), so a stop signal is seen within that.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

STOP_CHECK_SECONDS = 0.25  # the longest sleep before looking at ``stopping``
HOT_SECONDS = 0.05  # after a write to the -wal file, data_version is read for this long
HOT_TICK_SECONDS = 0.002  # ... this often
CHANNEL = "backprop_jobs"  # migration 0011's trigger notifies it when a job is queued
RELISTEN_SECONDS = 5.0  # between attempts to open a lost LISTEN connection
_IN_MODIFY = 0x2
_IN_NONBLOCK_CLOEXEC = os.O_NONBLOCK | os.O_CLOEXEC  # inotify_init1's IN_NONBLOCK | IN_CLOEXEC


def _inotify_on(path: str) -> int | None:
    """A non-blocking inotify descriptor reporting writes to ``path``, or None."""
    if sys.platform != "linux" or not os.path.exists(path):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(_IN_NONBLOCK_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY) < 0:
        os.close(fd)
        return None
    return fd


class CommitWatch:
    """``wait(seconds, stopping)``: return when new work may be there (a commit to the
    SQLite file; a job queued, on PostgreSQL), when ``stopping`` is set, or after
    ``seconds`` (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self._connection: sqlite3.Connection | None = None  # SQLite: reads data_version
        self._inotify: int | None = None
        self._version = 0
        self._listener: Any = None  # PostgreSQL: a psycopg connection that LISTENs
        self._listen_url: str | None = None
        self._next_listen = 0.0
        self._lost: type[Exception] = OSError  # psycopg.Error once psycopg is imported
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql":
            self._listen_url = parsed.set(drivername="postgresql").render_as_string(
                hide_password=False
            )
            self._listen()
            return
        path = parsed.database
        if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
            return
        try:
            self._connection = sqlite3.connect(
                Path(path).resolve().as_uri() + "?mode=rw",
                uri=True,
                isolation_level=None,
                timeout=0.1,
            )
            self._version = self._read()  # in WAL mode this opens (or makes) the -wal file
        except sqlite3.Error:
            self.close()
            return
        self._inotify = _inotify_on(f"{path}-wal")
        if self._inotify is None:
            self.close()

    @property
    def watching(self) -> bool:
        """Whether new work ends a wait early (else a wait is its whole length)."""
        return self._inotify is not None or self._listener is not None

    @property
    def sees_every_commit(self) -> bool:
        """Whether any commit ends a wait (SQLite's watch): another worker's job ending
        then ends it too. PostgreSQL's ends when a job is queued, a plain wait never."""
        return self._inotify is not None

    def _read(self) -> int:
        assert self._connection is not None
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def _changed(self) -> bool:
        """Whether another connection committed since the last call (or the watch's
        start). An error ends the watch (later waits are plain) and answers True."""
        try:
            version = self._read()
        except sqlite3.Error:
            self.close()
            return True
        seen, self._version = self._version, version
        return version != seen

    def wait(self, seconds: float, stopping: threading.Event) -> None:
        """Block until new work may be there, ``stopping``, or ``seconds``."""
        deadline = time.monotonic() + seconds
        if self._listen_url is not None:
            self._wait_notified(deadline, stopping)
        elif self._inotify is not None:
            self._wait_written(deadline, stopping)
        else:
            stopping.wait(seconds)

    def _wait_written(self, deadline: float, stopping: threading.Event) -> None:
        hot_until = 0.0  # data_version is read every HOT_TICK_SECONDS until then
        while not stopping.is_set() and self._inotify is not None:
            if self._changed():
                return
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return
            nap = HOT_TICK_SECONDS if now < hot_until else STOP_CHECK_SECONDS
            ready, _, _ = select.select([self._inotify], [], [], min(left, nap))
            if ready:
                self._drain()
                hot_until = time.monotonic() + HOT_SECONDS

    def _drain(self) -> None:
        assert self._inotify is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._inotify, 4096):
                pass

    def _listen(self) -> None:
        """Open the LISTEN connection (PostgreSQL); on failure, waits stay plain until the
        next try, RELISTEN_SECONDS later."""
        self._next_listen = time.monotonic() + RELISTEN_SECONDS
        try:
            import psycopg
        except ImportError:  # no driver: the engine could not connect either
            return
        self._lost = psycopg.Error
        try:
            listener = psycopg.connect(self._listen_url or "", autocommit=True, connect_timeout=5)
        except psycopg.Error:
            return
        try:
            listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error:
            listener.close()
            return
        self._listener = listener

    def _wait_notified(self, deadline: float, stopping: threading.Event) -> None:
        while not stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._listener is None and time.monotonic() >= self._next_listen:
                self._listen()
            if self._listener is None:
                stopping.wait(min(left, max(0.0, self._next_listen - time.monotonic())))
                continue
            try:
                for _ in self._listener.notifies(
                    timeout=min(left, STOP_CHECK_SECONDS), stop_after=1
                ):
                    return
            except self._lost:  # the connection was lost: open it again later
                self._close_listener()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(self._lost):
                listener.close()

    def close(self) -> None:
        self._close_listener()
        self._listen_url = None
        if self._inotify is not None:
            os.close(self._inotify)
            self._inotify = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
