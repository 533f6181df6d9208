"""The lists' and the claim's statements read through indexes, not whole tables (SQLite's
query plans; migration 0010)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select, func, select

from app.storage.migrations import upgrade
from app.storage.tables import Dataset, Job, Model, Network, Sweep
from tests.storage.plans import query_plan


def newest_first(table: Any) -> Select[Any]:
    """A list page's statement (app/services/ownership.py ``page``)."""
    return (
        select(table)
        .where(table.owner_id == 1)
        .order_by(table.created_at.desc(), table.id)
        .limit(20)
        .offset(0)
    )


@pytest.mark.parametrize("table", [Job, Model, Dataset, Network, Sweep])
def test_a_list_page_reads_the_owners_rows_in_order(sqlite_url: str, table: Any) -> None:
    # On an owner_id index alone every page sorted all the owner's rows: 82 ms for a
    # page of 20 of 50,000 jobs; on (owner_id, created_at) 3.6 ms.
    upgrade(sqlite_url)
    name = table.__tablename__
    plan = query_plan(sqlite_url, newest_first(table))
    assert f"SEARCH {name} USING INDEX ix_{name}_owner_created (owner_id=?)" in plan, plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan  # ties on created_at only
    total = query_plan(
        sqlite_url, select(func.count()).select_from(table).where(table.owner_id == 1)
    )
    assert any(f"USING COVERING INDEX ix_{name}_owner_" in line for line in total), total
