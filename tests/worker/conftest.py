"""Worker-test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.storage.database import Database
from app.storage.migrations import upgrade


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    """A migrated SQLite database, for the process-heavy tests run on one backend only."""
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    yield database
    database.dispose()
