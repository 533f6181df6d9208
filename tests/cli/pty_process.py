"""A child process on a pseudo-terminal: what it writes, read as a terminal would show it."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def plain(text: str) -> str:
    """``text`` without ANSI control sequences; each carriage return (a redraw of the line)
    starts a new line, so that every frame of a live display is a line of its own."""
    return ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


class PtyProcess:
    """``args`` with stdin, stdout and stderr on a new pseudo-terminal of ``columns`` x 40."""

    def __init__(
        self, args: Sequence[str], *, env: dict[str, str], cwd: Path, columns: int = 160
    ) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        self.process = subprocess.Popen(
            list(args),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self.raw = b""

    @property
    def text(self) -> str:
        """Everything written so far, without control sequences."""
        return plain(self.raw.decode("utf-8", errors="replace"))

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout`` s; False at end of output."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child has closed the terminal
            return False
        self.raw += chunk
        return bool(chunk)

    def expect(self, pattern: str, *, timeout: float = 60) -> re.Match[str]:
        """Wait until the shown text matches ``pattern``; AssertionError with it if not."""
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.text)) is None:
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError(f"no {pattern!r} in the terminal:\n{self.text}")
        return match

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 60) -> int:
        """Read to the end of output; the exit status."""
        deadline = time.monotonic() + timeout
        while self._read(0.1) and time.monotonic() < deadline:
            if self.process.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                break
        status = self.process.wait(timeout=max(deadline - time.monotonic(), 1))
        return status

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
