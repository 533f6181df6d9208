"""Child processes for the process-level tests: a free port, the ``backprop`` command,
waiting on a condition or on ``/healthz``, stopping a process (tree), and a whole
``backprop serve`` on a fresh SQLite file."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 60,
    interval: float = 0.05,
    error: type[AssertionError] = AssertionError,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that value; raise
    ``error`` naming ``what`` after ``timeout`` seconds (generous: no timing is tested)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30, group: bool = False) -> None:
    """SIGTERM ``process`` and wait for it (SIGKILL after ``timeout`` s); with ``group``,
    then SIGKILL its whole process group, so that no child it started is left behind."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def backprop_command(*args: str) -> list[str]:
    """The ``backprop`` CLI with ``args``, run by the current interpreter (the installed
    console script when there is one, else ``app.cli.main``)."""
    script = Path(sys.executable).with_name("backprop")
    if script.is_file():
        return [sys.executable, str(script), *args]
    return [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())", *args]


def wait_healthy(
    base_url: str,
    process: subprocess.Popen[bytes],
    *,
    logs: Callable[[], str],
    timeout: float = 180,
    error: type[AssertionError] = AssertionError,
) -> None:
    """Poll ``GET {base_url}/healthz`` until it answers 200 (a start-up takes over a minute
    on a loaded 2-core CI machine); raise ``error`` with ``logs()``
    as soon as ``process`` (the server) exits, or after ``timeout`` seconds."""

    def healthy() -> bool:
        if process.poll() is not None:
            raise error(f"the server exited with status {process.returncode}:\n{logs()}")
        try:
            return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, what=f"{base_url}/healthz", timeout=timeout, interval=0.1, error=error)
    except error as exc:
        if process.poll() is not None:
            raise  # the message already has the logs
        raise error(f"{exc}:\n{logs()}") from None


@dataclass(frozen=True)
class Served:
    """A running ``backprop serve``: its URL, its bootstrap key, the file of its output."""

    url: str
    key: str
    log: Path


@contextmanager
def serve_on_sqlite(
    tmp_path: Path,
    *,
    workers: int,
    timeout: float,
    settings: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
) -> Iterator[Served]:
    """``backprop serve`` with ``workers`` workers on a free port, a fresh SQLite file in
    ``tmp_path`` (serve migrates it) and a new bootstrap key; ``settings`` (BACKPROP_*
    names) over this environment, less the names in ``unset``. Output goes to
    ``tmp_path/server.log``; at the end its whole process group is stopped."""
    port = free_port()
    key = "bp_" + secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'backprop.db'}",
        "BACKPROP_BOOTSTRAP_KEY": key,
        **(settings or {}),
    }
    for name in unset:
        env.pop(name, None)
    log = tmp_path / "server.log"
    command = backprop_command("serve", "--host", "127.0.0.1", "--port", str(port))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, logs=lambda: log.read_text(errors="replace"), timeout=timeout)
        yield Served(url, key, log)
    finally:
        stop(process, group=True)
