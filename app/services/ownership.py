"""Owned-row lookups: a foreign id is answered exactly like an unknown one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import ExecutableOption

from app.models import Dataset, Job, Model, Network
from app.services.errors import NotFound

Row = TypeVar("Row", Dataset, Network, Job, Model)

_NAMES: dict[type, str] = {Dataset: "dataset", Network: "network", Job: "job", Model: "model"}


def get_owned(
    session: Session,
    table: type[Row],
    row_id: str,
    *,
    owner_id: int,
    loc: Sequence[str | int],
    for_update: bool = False,
    options: Sequence[ExecutableOption] = (),
) -> Row:
    """The row ``row_id`` of ``table`` if ``owner_id`` owns it, else :class:`NotFound`."""
    query = select(table).where(table.id == row_id, table.owner_id == owner_id).options(*options)
    if for_update:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise NotFound(_NAMES[table], loc)
    return row


def page(
    session: Session,
    table: type[Row],
    *,
    owner_id: int,
    limit: int,
    offset: int,
    where: Sequence[ColumnElement[bool]] = (),
    options: Sequence[ExecutableOption] = (),
) -> tuple[list[Row], int]:
    """Rows of ``owner_id``, newest first, and how many there are in all."""
    conditions = [table.owner_id == owner_id, *where]
    total = session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0
    rows = session.scalars(
        select(table)
        .options(*options)
        .where(*conditions)
        .order_by(table.created_at.desc(), table.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total
