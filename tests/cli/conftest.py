"""The client's tests: one real `backprop serve` (one worker) for the package, and the
``backprop`` command run in-process against it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.cli import main
from tests.cli.server import Server

KEY = "bp_" + "c" * 43


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str


@dataclass
class Cli:
    """``backprop ARGS --url URL --key KEY`` in this process, its output captured."""

    url: str
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str, key: str | None = KEY) -> Result:
        self.capsys.readouterr()
        argv = [*args, "--url", self.url, *(["--key", key] if key else [])]
        status = main(argv)
        captured = self.capsys.readouterr()
        return Result(status, captured.out, captured.err)

    def ok(self, *args: str) -> str:
        """stdout of a command that must succeed."""
        result = self(*args)
        assert result.status == 0, result
        return result.out

    def id(self, *args: str) -> str:
        """The one id a create command prints on stdout."""
        (line,) = self.ok(*args).splitlines()
        return line


@dataclass(frozen=True)
class Running:
    url: str
    key: str
    server: Server

    def get(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=30)


@pytest.fixture(scope="package")
def client_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`backprop serve --workers 1` on SQLite, with the bootstrap key ``KEY``."""
    tmp = tmp_path_factory.mktemp("client-server")
    server = Server(
        tmp,
        workers=1,
        BACKPROP_DATABASE_URL=f"sqlite:///{tmp / 'backprop.db'}",
        BACKPROP_BOOTSTRAP_KEY=KEY,
        BACKPROP_BLAS_THREADS="1",
    )
    try:
        server.wait_healthy()
        yield Running(server.url, KEY, server)
    finally:
        assert server.stop() == 0, server.logs()


@pytest.fixture
def cli(client_server: Running, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(client_server.url, capsys)


def write_csv(path: Path, *, rows: int = 160, seed: int = 0) -> Path:
    """Features ``a,b`` and a label column ``kind`` (``yes`` when a + b > 0) in the middle."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    lines = ["a,kind,b"]
    lines += [f"{a:.4f},{'yes' if a + b > 0 else 'no'},{b:.4f}" for a, b in x]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "points.csv")


@pytest.fixture
def dataset_id(cli: Cli, csv_file: Path) -> str:
    return cli.id("datasets", "upload", str(csv_file), "--target", "kind")


@pytest.fixture
def network_id(cli: Cli) -> str:
    return cli.id("networks", "create", "--input-size", "2", "--layers", "8:tanh,2:softmax")
