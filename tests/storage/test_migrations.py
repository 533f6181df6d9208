"""Migrations build exactly the schema of app/storage/tables.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.storage.database import Database
from app.storage.migrations import (
    alembic_config,
    current_revisions,
    head_revisions,
    is_current,
    upgrade,
)
from app.storage.tables import Base


def _differences(database: Database) -> list[object]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_migrations_produce_the_models_metadata(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert not is_current(database)
        assert current_revisions(database) == set()

        upgrade(database_url)

        assert is_current(database)
        assert current_revisions(database) == head_revisions()
        assert _differences(database) == []
    finally:
        database.dispose()


def test_upgrade_is_idempotent_and_downgrade_reverses_it(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # a second `backprop serve` start: nothing to do
    database = Database(database_url)
    try:
        command.downgrade(alembic_config(database_url), "base")
        assert current_revisions(database) == set()
        with database.engine.connect() as connection:
            tables = set(database.engine.dialect.get_table_names(connection))
        assert tables <= {"alembic_version"}

        upgrade(database_url)
        assert is_current(database) and _differences(database) == []
    finally:
        database.dispose()
