"""`backprop keys` and `backprop migrate`, run in-process through ``main(argv)``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.cli import main
from app.services.keys import authenticate, hash_key
from app.storage.database import Database
from app.storage.tables import ApiKey
from tests.conftest import MakeSettings


@pytest.fixture
def cli_db(sqlite_url: str, make_settings: MakeSettings) -> str:
    make_settings(sqlite_url)
    assert main(["migrate"]) == 0
    return sqlite_url


def _create(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["keys", "create", *args]) == 0
    return capsys.readouterr().out.rstrip("\n").splitlines()[-1]


def test_create_prints_the_key_alone_on_the_last_line(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    key = _create(capsys, "ci", "--owner", "team")

    assert key.startswith("bp_") and " " not in key
    database = Database(cli_db)
    with database.read_session() as session:
        caller = authenticate(session, key)
        row = session.scalar(select(ApiKey).where(ApiKey.name == "ci"))
    database.dispose()
    assert caller is not None and (caller.owner_name, caller.key_name) == ("team", "ci")
    assert row is not None and row.key_hash == hash_key(key)


def test_only_the_hash_reaches_the_database_file(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _create(capsys, "secret")

    path = Path(cli_db.removeprefix("sqlite:///"))
    stored = b"".join(
        p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name)
    )  # the database file and its -wal / -shm companions
    assert hash_key(key).encode() in stored
    assert key.encode() not in stored
    assert key[3:].encode() not in stored


def test_list_shows_keys_but_never_the_key(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = _create(capsys, "alpha", "--owner", "ann")
    second = _create(capsys, "beta")
    assert main(["keys", "revoke", "beta"]) == 0
    capsys.readouterr()

    assert main(["keys", "list"]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "OWNER", "PREFIX", "CREATED", "LAST", "USED", "REVOKED"]
    alpha = next(line for line in lines if line.startswith("alpha"))
    beta = next(line for line in lines if line.startswith("beta"))
    assert alpha.split()[1] == "ann" and alpha.split()[2] == first[:7] + "…"
    assert alpha.rstrip().endswith("-")  # not revoked, never used
    assert not beta.rstrip().endswith("-")  # revoked: a date
    for key in (first, second):
        assert key not in out and key[7:20] not in out


def test_revoked_keys_stop_working(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    key = _create(capsys, "temp")

    assert main(["keys", "revoke", "temp"]) == 0
    assert "Revoked" in capsys.readouterr().out

    database = Database(cli_db)
    with database.read_session() as session:
        assert authenticate(session, key) is None
    database.dispose()


def test_revoking_an_unknown_key_fails_with_a_message(
    cli_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "revoke", "nobody"]) == 1
    assert "no live key named 'nobody'" in capsys.readouterr().err


def test_a_duplicate_name_is_refused(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    _create(capsys, "dup")

    assert main(["keys", "create", "dup"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_keys_refuse_an_unmigrated_database(
    sqlite_url: str, make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings(sqlite_url)

    assert main(["keys", "list"]) == 1
    assert "backprop migrate" in capsys.readouterr().err


def test_migrate_works_on_both_backends(
    database_url: str, make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings(database_url)

    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0
    key = _create(capsys, "pg-or-sqlite")
    assert key.startswith("bp_")


@pytest.mark.parametrize("name", ["", "evil\nNAME  OWNER  x", "a" * 101])
def test_a_key_name_is_one_line_of_1_to_100_characters(
    cli_db: str, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Empty, multi-line (a fake row in `keys list`) or longer than the column: refused."""
    assert main(["keys", "create", name]) == 1
    assert "1 to 100 characters without control characters" in capsys.readouterr().err
    with Database(cli_db).read_session() as session:
        assert session.scalars(select(ApiKey)).all() == []
