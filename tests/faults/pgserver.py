"""A throwaway PostgreSQL server that a test may stop and start (never the shared one).

Like ``.ci/run`` section 2: ``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/15/bin``
(or ``$PG_BIN``), loopback only, a free port, a temp folder, trust authentication, run
as the unprivileged user ``backprop-ci`` when the tests run as root (PostgreSQL refuses
to run as root). :func:`pg_server_or_skip` skips the test, saying why, when the binaries
or that user are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.processes import free_port

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "backprop-ci"
PG_DB_USER = "backprop"


class PgServer:
    """One cluster in ``workdir``; :meth:`stop` / :meth:`start` as an operator would."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "pgdata"
        self.port = free_port()
        self.url = f"postgresql+psycopg://{PG_DB_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str | Path, timeout: float = 120) -> None:
        command: Sequence[str | Path] = args
        if os.geteuid() == 0:
            command = ["runuser", "-u", PG_OS_USER, "--", *(str(a) for a in args)]
        done = subprocess.run(
            command, cwd="/", capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            log = self.workdir / "postgres.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stderr}\n{tail}")

    def init(self) -> None:
        self._run(
            PG_BIN / "initdb", "-D", self.data, "-U", PG_DB_USER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} "
            "-c max_connections=200 -c fsync=off -c synchronous_commit=off"
        )
        self._run(
            PG_BIN / "pg_ctl", "-D", self.data, "-l", self.workdir / "postgres.log",
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


def _skip_reason() -> str | None:
    if not (PG_BIN / "initdb").is_file():
        return f"no PostgreSQL server binaries in {PG_BIN} (set PG_BIN)"
    if os.geteuid() == 0:
        try:
            subprocess.run(["id", PG_OS_USER], check=True, capture_output=True)
        except (subprocess.CalledProcessError, FileNotFoundError):
            return f"running as root without the user {PG_OS_USER} to run PostgreSQL as"
    return None


@contextmanager
def pg_server_or_skip() -> Iterator[PgServer]:
    """A started throwaway server; stopped (immediate) and deleted afterwards."""
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="backprop-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, PG_OS_USER)
    server = PgServer(workdir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")
        shutil.rmtree(workdir, ignore_errors=True)
