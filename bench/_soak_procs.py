"""The process tree of ``backprop serve`` as the soak sees it, read from ``/proc`` (Linux).

``serve`` (the supervisor) starts the API (``python -m app.api.http_server``), N workers
(``python -m app.cli worker``) and now and then ``backprop gc``; this module finds them by
parent pid and command line, reads their resident memory, and maps a job's ``worker_id``
(``host:pid:random``) to its pid. No psutil: two files of ``/proc`` are enough.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` (None once it has gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def command_line(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def children(pid: int) -> list[int]:
    """The live children of ``pid``."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and parent_pid(int(entry.name)) == pid:
            found.append(int(entry.name))
    return sorted(found)


def _status_field(pid: int, name: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    return None


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes (``VmRSS``; None once it has gone)."""
    kib = _status_field(pid, "VmRSS")
    return kib * 1024 if kib is not None else None


def thread_count(pid: int) -> int | None:
    """Threads of ``pid`` (each may hold a malloc arena: RSS follows the peak count)."""
    return _status_field(pid, "Threads")


def worker_pid(worker_id: str | None) -> int | None:
    """The pid inside a worker id ``host:pid:random`` (None if it has no such part)."""
    if not worker_id:
        return None
    parts = worker_id.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


@dataclass(frozen=True)
class Tree:
    """The API and the worker processes under one ``serve`` at one moment."""

    api: int | None
    workers: tuple[int, ...]


def serve_tree(serve_pid: int) -> Tree:
    """Who runs under ``serve_pid`` now (a worker being restarted is simply absent)."""
    api = None
    workers = []
    for pid in children(serve_pid):
        args = command_line(pid)
        if "app.api.http_server" in args:
            api = pid
        elif "worker" in args and "app.cli" in args:
            workers.append(pid)
    return Tree(api, tuple(workers))
