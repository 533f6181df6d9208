"""Child processes for the process-level tests: a free port, the ``backprop`` command,
waiting on a condition or on ``/healthz``, and stopping a process (tree)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
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
