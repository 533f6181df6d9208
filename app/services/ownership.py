"""Owned-row lookups (a foreign id is answered exactly like an unknown one), pages of an
owner's rows, and the guard that keeps rows an active job needs from being deleted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import ExecutableOption

from app.services.errors import Conflict, NotFound
from app.storage.tables import (
    ACTIVE_STATUSES,
    Dataset,
    Evaluation,
    Job,
    JobKind,
    Model,
    Network,
    Sweep,
)

Row = TypeVar("Row", Dataset, Network, Job, Model, Sweep)

_NAMES: dict[type, str] = {
    Dataset: "dataset",
    Network: "network",
    Job: "job",
    Model: "model",
    Sweep: "sweep",
}


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
    if "\x00" in row_id:  # no id holds one (and PostgreSQL's text refuses it)
        raise NotFound(_NAMES[table], loc)
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


def refuse_while_in_use(
    session: Session, uses: ColumnElement[bool], *, what: str, loc: Sequence[str | int]
) -> None:
    """409 ``in_use`` while a queued or running job ``uses`` the row (e.g.
    ``Job.dataset_id == id``); ``what`` ends the message: "job ... is queued or running
    {what}; cancel it first (POST ...)", the job named by what its owner knows it as (a
    training job, a prediction run, an evaluation) with the request that cancels it."""
    active = session.execute(
        select(Job.id, Job.kind).where(uses, Job.status.in_(ACTIVE_STATUSES)).limit(1)
    ).first()
    if active is not None:
        job_id, kind = active
        if kind == JobKind.EVALUATE:  # its handle is the evaluation's id, not the job's
            evaluation = (
                session.scalar(select(Evaluation.id).where(Evaluation.job_id == job_id)) or job_id
            )
            name, cancel = f"evaluation {evaluation}", f"/v1/evaluations/{evaluation}/cancel"
        elif kind == JobKind.PREDICT:
            name, cancel = f"prediction run {job_id}", f"/v1/predictions/{job_id}/cancel"
        else:
            name, cancel = f"job {job_id}", f"/v1/jobs/{job_id}/cancel"
        raise Conflict(
            f"{name} is queued or running {what}; cancel it first (POST {cancel})",
            loc,
            error_type="in_use",
        )
