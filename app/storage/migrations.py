"""Schema migrations (Alembic), configured in code: no alembic.ini needed.

The scripts live in ``migrations/`` at the top of the source tree; a built wheel carries
them as ``app/_migrations`` (see pyproject's force-include). ``upgrade`` takes a lock so
that several processes starting at once (``backprop serve`` on two hosts) migrate once.

Migrations that move data into the blob store (0005) find it in the Alembic config's
``attributes["blob_store"]``: a function that opens the store of the settings given to
:func:`upgrade`, called only when there is something to move.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from app.config import Settings, get_settings
from app.storage.blobs import BlobStore, open_blob_store
from app.storage.database import Database, make_engine

# Any constant will do; it only has to be the same in every Backprop process.
_PG_MIGRATION_LOCK = 0x6270_6D69  # "bpmi"


def script_location() -> Path:
    """The migrations folder: inside the installed package, else the source tree's."""
    package_dir = Path(__file__).resolve().parent.parent  # app/
    for candidate in (package_dir / "_migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"no Alembic migrations next to {package_dir}")


def alembic_config(
    url: str,
    connection: Connection | None = None,
    blob_store: Callable[[], BlobStore] | None = None,
) -> Config:
    """An Alembic Config for ``url`` (and an open ``connection`` to run on, and a function
    that opens the blob store, if given)."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    if blob_store is not None:
        config.attributes["blob_store"] = blob_store
    return config


def upgrade(url: str, revision: str = "head", *, settings: Settings | None = None) -> None:
    """Bring the database at ``url`` to ``revision`` (default: the newest); data moved to
    the blob store goes to the store of ``settings`` (default: the environment's)."""
    engine = make_engine(url, sqlite_foreign_keys=False)  # see make_engine
    try:
        # On SQLite the transaction begins IMMEDIATE (app.storage.database): migrators queue.
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            store = lambda: open_blob_store(settings or get_settings())  # noqa: E731
            command.upgrade(alembic_config(url, connection, store), revision)
    finally:
        engine.dispose()


def head_revisions() -> set[str]:
    """The newest revision(s) the code knows."""
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(database: Database) -> set[str]:
    """The revision(s) recorded in ``database`` (empty for an unmigrated one). Read
    without SQLite's write lock, so a writer stuck holding it (a stopped worker) stalls
    neither ``/readyz`` nor ``backprop backup``."""
    with database.read_connection() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def is_current(database: Database) -> bool:
    """True when ``database`` is at the newest revision (for ``/readyz``)."""
    return current_revisions(database) == head_revisions()
