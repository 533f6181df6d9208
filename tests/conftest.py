"""Fixtures shared by every test package.

- ``database_url``: an EMPTY database, once per backend: ``sqlite`` (a file in tmp_path)
  and ``postgres`` (a fresh database on the server named by env
  ``BACKPROP_TEST_POSTGRES_URL``, e.g. ``postgresql+psycopg://user@127.0.0.1:5432/postgres``,
  dropped afterwards). The postgres case is marked ``postgres`` and skipped, with the
  reason, when the variable is unset.
- ``sqlite_url`` / ``postgres_url``: one backend only (postgres: skipped without a server).
- ``migrated_db``: a :class:`app.storage.database.Database` on ``database_url``, migrated.
- ``_private_data_dir`` (autouse): ``BACKPROP_DATA_DIR`` points into the test's tmp_path,
  so that no test (nor a process it starts) writes into the real per-user data folder.
- ``blob_url`` / ``blob_store``: an empty blob store, once per backend: ``file`` (a folder in
  tmp_path) and ``s3`` (see tests/s3server.py: a bucket on the server of
  ``BACKPROP_TEST_S3_URL``, or on a SeaweedFS started for the session when ``weed`` is on
  PATH; skipped, with the reason, otherwise).
- ``make_settings``: ``make_settings(database_url, **fields) -> Settings``; it also exports
  each field as ``BACKPROP_<FIELD>`` (so ``get_settings()`` and child processes started
  with the test's environment see the same values) and clears the settings cache.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings, get_settings
from app.storage.blobs import BlobStore, open_blob_store
from app.storage.database import Database
from app.storage.migrations import upgrade
from tests.s3server import SKIP_REASON as S3_SKIP_REASON
from tests.s3server import S3Server, s3_server

POSTGRES_ENV = "BACKPROP_TEST_POSTGRES_URL"

MakeSettings = Callable[..., Settings]


def _postgres_database(server_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server; yield its URL; drop it."""
    name = f"bp_test_{secrets.token_hex(6)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("BACKPROP_DATA_DIR", str(data_dir))
    for name in ("BACKPROP_BLOB_URL", "BACKPROP_BLOB_CACHE_DIR", "BACKPROP_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backprop.db'}"
        return
    yield request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of an empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'backprop.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database (the test is skipped without a server)."""
    server_url = os.environ.get(POSTGRES_ENV)
    if not server_url:
        pytest.skip(f"set {POSTGRES_ENV} to a PostgreSQL server URL to run the postgres tests")
    yield from _postgres_database(server_url)


@pytest.fixture
def migrated_db(database_url: str) -> Iterator[Database]:
    """A Database on ``database_url`` with every migration applied."""
    upgrade(database_url)
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeSettings]:
    """Build Settings and export them as BACKPROP_* for this test and its child processes."""

    def build(database_url: str, **fields: Any) -> Settings:
        values: dict[str, Any] = {"database_url": database_url, **fields}
        for name, value in values.items():
            monkeypatch.setenv(f"BACKPROP_{name.upper()}", str(value))
        get_settings.cache_clear()
        return Settings(**values)

    yield build
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def s3_server_or_none(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server | None]:
    yield from s3_server(tmp_path_factory)


@pytest.fixture
def s3(s3_server_or_none: S3Server | None, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server (skipped without one), its endpoint and credentials exported."""
    if s3_server_or_none is None:
        pytest.skip(S3_SKIP_REASON)
    for name, value in s3_server_or_none.env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return s3_server_or_none


@pytest.fixture(params=[pytest.param("file"), pytest.param("s3", marks=pytest.mark.s3)])
def blob_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty blob store: a folder, or a fresh prefix of an S3 bucket (whose
    endpoint and credentials are then in the environment, for Settings and children)."""
    if request.param == "file":
        return (tmp_path / "blobs").resolve().as_uri()
    server: S3Server = request.getfixturevalue("s3")
    return server.new_url()


@pytest.fixture
def blob_store(blob_url: str) -> BlobStore:
    """The empty store at ``blob_url``."""
    return open_blob_store(Settings(blob_url=blob_url))
