"""`backprop serve` as a real child process, with its output captured to files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.processes import free_port, wait_healthy
from tests.worker.procs import REPO_ROOT

KEY_LINE = re.compile(r"^bp_[A-Za-z0-9_-]{43}$", re.MULTILINE)
# The supervisor's log line for each child it starts (app/jobs/supervisor.py).
STARTED_LINE = re.compile(r"started (\S+) \(pid (\d+)\)$", re.MULTILINE)


class Server:
    """``python -m app.cli serve --workers N`` on a free port; stdout/stderr to files."""

    def __init__(self, tmp_path: Path, *, workers: int, name: str = "serve", **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = tmp_path / f"{name}.out"
        self.stderr_path = tmp_path / f"{name}.err"
        args = [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)]
        args += ["--workers", str(workers)]
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                args,
                env={**os.environ, **env},
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def logs(self) -> str:
        return f"stdout:\n{self.stdout}\nstderr:\n{self.stderr_path.read_text()}"

    def printed_keys(self) -> list[str]:
        return KEY_LINE.findall(self.stdout)

    def started_pids(self, name: str) -> list[int]:
        """The pids of the children named ``name`` (``api``, ``worker-1``...) that the
        supervisor started so far, oldest first."""
        text = self.stderr_path.read_text()
        return [int(pid) for child, pid in STARTED_LINE.findall(text) if child == name]

    def wait_healthy(self, timeout: float = 180) -> None:
        wait_healthy(self.url, self.process, logs=self.logs, timeout=timeout)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd or docker would; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(os.getpgid(self.process.pid), signal.SIGKILL)
            raise AssertionError(f"serve did not stop:\n{self.logs()}") from None
