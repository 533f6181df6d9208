"""SQLite query plans for the tests that check a statement reads through an index."""

from __future__ import annotations

from typing import Any

from app.storage.database import Database


def query_plan(url: str, statement: Any) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of ``statement`` (its bound values as compiled)."""
    database = Database(url)
    try:
        with database.read_session() as session:
            connection = session.connection()
            compiled = statement.compile(dialect=connection.dialect)
            assert compiled.positiontup is not None
            params = tuple(compiled.params[name] for name in compiled.positiontup)
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
            return [row[3] for row in rows]
    finally:
        database.dispose()
