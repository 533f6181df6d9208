"""Readiness and the numbers /metrics reports, read from the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from app.storage import migrations as migrate
from app.storage.database import Database
from app.storage.tables import Job, JobKind, JobStatus, WorkerHeartbeat, utcnow

WORKER_FRESH_SECONDS = 30.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str]


def readiness(db: Database) -> Readiness:
    """Ready = the database answers, migrations are current, a worker beat within 30 s."""
    try:
        with db.read_session() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return Readiness(False, [f"database unreachable: {type(exc).__name__}"])
    reasons: list[str] = []
    try:
        if not migrate.is_current(db):
            reasons.append("database migrations are not current: run `backprop migrate`")
    except SQLAlchemyError as exc:
        reasons.append(f"cannot read the migration state: {type(exc).__name__}")
    try:
        if live_workers(db) == 0:
            reasons.append(f"no worker heartbeat within {WORKER_FRESH_SECONDS:g} s")
    except SQLAlchemyError as exc:
        reasons.append(f"cannot read worker heartbeats: {type(exc).__name__}")
    return Readiness(not reasons, reasons)


def live_workers(db: Database) -> int:
    cutoff = utcnow() - timedelta(seconds=WORKER_FRESH_SECONDS)
    with db.read_session() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(WorkerHeartbeat)
                .where(WorkerHeartbeat.heartbeat_at >= cutoff)
            )
            or 0
        )


def jobs_by_status(db: Database) -> dict[str, int]:
    """Count of training jobs in each status (every status present, zero if none)."""
    counts = {status.value: 0 for status in JobStatus}
    training = select(Job.status, func.count()).where(Job.kind == JobKind.TRAIN)
    with db.read_session() as session:
        for status, count in session.execute(training.group_by(Job.status)):
            counts[status] = count
    return counts
