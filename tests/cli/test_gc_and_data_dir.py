"""`backprop gc` prints what it removed; with no database setting, every command uses the
per-user data directory, so `backprop keys list` works from any folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.config import get_settings
from app.storage.blobs import open_blob_store
from app.storage.database import Database
from tests.conftest import MakeSettings
from tests.queue.rows import add_dataset, add_owner


def test_gc_removes_old_unreferenced_blobs_and_says_so(
    sqlite_url: str, make_settings: MakeSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(sqlite_url)
    assert main(["migrate"]) == 0
    db = Database(sqlite_url)
    try:
        add_dataset(db, add_owner(db))
    finally:
        db.dispose()
    store = open_blob_store(settings)
    orphan = store.put_bytes(b"an aborted upload")
    capsys.readouterr()

    assert main(["gc"]) == 0
    assert "removed 0 blob(s)" in capsys.readouterr().out  # young: inside the grace

    assert main(["gc", "--grace", "0"]) == 0
    out = capsys.readouterr().out
    assert f"removed {orphan.sha256} ({orphan.size} bytes)" in out
    assert "removed 1 blob(s)" in out and "kept 2 referenced" in out
    assert not store.exists(orphan.sha256)
    assert len(list(store.iter_blobs())) == 2  # the dataset's x and y


def test_commands_default_to_the_data_dir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "home" / ".local" / "share" / "backprop"
    monkeypatch.delenv("BACKPROP_DATA_DIR")
    monkeypatch.delenv("BACKPROP_DATABASE_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    get_settings.cache_clear()
    assert get_settings().data_dir == data_dir

    assert main(["migrate"]) == 0
    assert (data_dir / "backprop.db").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["keys", "create", "ci"]) == 0
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    assert "ci" in capsys.readouterr().out
    assert list(elsewhere.iterdir()) == []  # no stray ./backprop.db
    get_settings.cache_clear()


def test_xdg_data_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKPROP_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.data_dir == tmp_path / "xdg" / "backprop"
    assert settings.blob_url == (tmp_path / "xdg" / "backprop" / "blobs").as_uri()
    get_settings.cache_clear()
