"""Waiting for a commit to the database, for an idle worker.

On SQLite, ``PRAGMA data_version`` read on a connection changes whenever any other
connection, in any process, has committed since the last read; reading it takes no lock
and costs a few microseconds. A commit in WAL mode is a write to the ``-wal`` file, which
Linux reports through inotify. So an idle worker sleeps in ``select`` on an inotify
descriptor watching that file (no CPU at all while nothing is written), and on a write
reads data_version to see whether a commit finished: a sweep posted to an idle server
starts within a few milliseconds instead of up to a poll interval
(``BACKPROP_POLL_SECONDS``, 0.2 s) later. Without inotify (not Linux) the watch reads
data_version every :data:`TICK_SECONDS` instead (a timer wake-up costs ~40-100 us of CPU
in a VM, which is why it is not the first choice). The poll interval stays the upper bound
of a wait either way: the watch only ends waits early.

On PostgreSQL (and an in-memory SQLite database, which no other connection shares) there
is nothing to watch and a wait is the poll interval.
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

from sqlalchemy.engine import make_url

TICK_SECONDS = 0.02  # between two reads of data_version where inotify is missing
STOP_CHECK_SECONDS = 0.25  # the longest sleep on inotify before looking at ``stopping``
_IN_MODIFY = 0x2
_IN_NONBLOCK_CLOEXEC = os.O_NONBLOCK | os.O_CLOEXEC  # inotify_init1's IN_NONBLOCK | IN_CLOEXEC


def _inotify_on(path: str) -> int | None:
    """A non-blocking inotify descriptor reporting writes to ``path``, or None."""
    if sys.platform != "linux":
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
    """``wait(seconds, stopping)``: return when another connection commits (SQLite
    files), ``stopping`` is set, or ``seconds`` have passed."""

    def __init__(self, url: str) -> None:
        self._connection: sqlite3.Connection | None = None
        self._inotify: int | None = None
        self._version = 0
        parsed = make_url(url)
        path = parsed.database
        if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
            return
        try:
            self._connection = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=0.1
            )
            self._version = self._read()  # in WAL mode this opens (or makes) the -wal file
        except sqlite3.Error:
            self.close()
            return
        self._inotify = _inotify_on(f"{path}-wal")

    @property
    def watching(self) -> bool:
        """Whether commits end a wait early (else a wait is its whole length)."""
        return self._connection is not None

    @property
    def inotify(self) -> bool:
        """Whether waits sleep on inotify (else they read data_version every tick)."""
        return self._inotify is not None

    def _read(self) -> int:
        assert self._connection is not None
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def changed(self) -> bool:
        """Whether another connection committed since the last call (or the watch's
        start); True when it cannot tell."""
        if self._connection is None:
            return True
        try:
            version = self._read()
        except sqlite3.Error:
            return True
        seen, self._version = self._version, version
        return version != seen

    def wait(self, seconds: float, stopping: threading.Event) -> None:
        """Block until a commit, ``stopping``, or ``seconds`` (see the class docstring)."""
        if self._connection is None:
            stopping.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        while not stopping.is_set():
            if self.changed():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._inotify is None:
                time.sleep(min(TICK_SECONDS, left))
                continue
            # Python resumes select after a signal's handler: ``stopping`` is looked at
            # again within STOP_CHECK_SECONDS whatever the poll interval.
            ready, _, _ = select.select([self._inotify], [], [], min(left, STOP_CHECK_SECONDS))
            if ready:
                self._drain()

    def _drain(self) -> None:
        assert self._inotify is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self._inotify, 4096):
                pass

    def close(self) -> None:
        if self._inotify is not None:
            os.close(self._inotify)
            self._inotify = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
