"""Resumable sweep event streams; prediction outputs in the storage quota.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

sweeps.events counts the trial endings numbered so far and jobs.sweep_event holds the
number of a trial's latest ending: the ``id`` of its event on GET /v1/sweeps/{id}/events,
which a client sends back as Last-Event-ID. Existing sweeps get their ended trials
numbered in the order they ended (finished_at, then index).

jobs.result_bytes is a prediction run's output size for BACKPROP_MAX_OWNER_BYTES.
Succeeded runs made before this revision get the size of their outputs as float32,
``rows x outputs x 4`` plus the 128-byte .npy header, from their model's config (runs
whose model is deleted stay uncounted).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMINAL = ("succeeded", "failed", "cancelled")
NPY_HEADER_BYTES = 128

SWEEPS = sa.table("sweeps", sa.column("id", sa.String), sa.column("events", sa.Integer))
JOBS = sa.table(
    "jobs",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("status", sa.String),
    sa.column("sweep_id", sa.String),
    sa.column("trial_index", sa.Integer),
    sa.column("finished_at", sa.DateTime),
    sa.column("sweep_event", sa.Integer),
    sa.column("model_id", sa.String),
    sa.column("rows_total", sa.BigInteger),
    sa.column("result_sha256", sa.String),
    sa.column("result_bytes", sa.BigInteger),
)
MODELS = sa.table("models", sa.column("id", sa.String), sa.column("config", sa.JSON))


def _number_sweep_events() -> None:
    connection = op.get_bind()
    for sweep_id in connection.execute(sa.select(SWEEPS.c.id)).scalars().all():
        ended = connection.execute(
            sa.select(JOBS.c.id)
            .where(JOBS.c.sweep_id == sweep_id, JOBS.c.status.in_(TERMINAL))
            .order_by(JOBS.c.finished_at, JOBS.c.trial_index)
        ).scalars()
        number = 0
        for number, job_id in enumerate(ended, start=1):
            connection.execute(JOBS.update().where(JOBS.c.id == job_id).values(sweep_event=number))
        connection.execute(SWEEPS.update().where(SWEEPS.c.id == sweep_id).values(events=number))


def _output_size(config: Any, rows: int) -> int:
    if isinstance(config, str):  # a JSON column read back as text on some backends
        config = json.loads(config)
    layers = config["network"]["layers"]
    return NPY_HEADER_BYTES + rows * int(layers[-1]["units"]) * 4


def _count_prediction_outputs() -> None:
    connection = op.get_bind()
    runs = connection.execute(
        sa.select(JOBS.c.id, JOBS.c.rows_total, MODELS.c.config)
        .join(MODELS, MODELS.c.id == JOBS.c.model_id)
        .where(JOBS.c.kind == "predict", JOBS.c.result_sha256.is_not(None))
    ).all()
    for job_id, rows, config in runs:
        size = _output_size(config, int(rows or 0))
        connection.execute(JOBS.update().where(JOBS.c.id == job_id).values(result_bytes=size))


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("events", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sweep_event", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("result_bytes", sa.BigInteger(), nullable=True))
    _number_sweep_events()
    _count_prediction_outputs()


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("result_bytes")
        batch.drop_column("sweep_event")
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("events")
