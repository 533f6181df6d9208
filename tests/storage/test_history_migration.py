"""Migration 0008 moves each job's history JSON into job_epochs rows, and back down."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from app.storage.database import Database
from app.storage.migrations import alembic_config, upgrade

HISTORY = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "layers": [{"grad_norm": 1}]}]


def test_the_history_moves_into_job_epochs_and_back(database_url: str) -> None:
    upgrade(database_url, "0005")
    database = Database(database_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    plain = ("id", "owner_id", "status", "cancel_requested", "keep_model", "epoch", "epochs")
    plain += ("error", "attempts", "samples_trained", "train_seconds", "created_at")
    documents = ("network_config", "options", "findings", "history")
    jobs = sa.table(
        "jobs", *map(sa.column, plain), *(sa.column(name, sa.JSON) for name in documents)
    )
    try:
        with database.engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO owners (id, name, created_at) VALUES (1, 'a', :t)"), {"t": now}
            )
            for job_id, history in (("job_a", HISTORY), ("job_b", [])):
                connection.execute(
                    jobs.insert().values(
                        id=job_id, owner_id=1, network_config={}, options={}, status="succeeded",
                        cancel_requested=False, keep_model=False, epoch=len(history), epochs=2,
                        error=None, attempts=1, samples_trained=0, train_seconds=0.0,
                        created_at=now, findings=[], history=history,
                    )
                )  # fmt: skip

        upgrade(database_url)
        with database.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT job_id, epoch, record FROM job_epochs ORDER BY job_id, epoch")
            ).all()
        records = [(job_id, epoch, _json(record)) for job_id, epoch, record in rows]
        assert records == [("job_a", 1, HISTORY[0]), ("job_a", 2, HISTORY[1])]

        command.downgrade(alembic_config(database_url), "0005")
        with database.engine.connect() as connection:
            back = dict(connection.execute(sa.text("SELECT id, history FROM jobs")).all())
        assert {job_id: _json(history) for job_id, history in back.items()} == {
            "job_a": HISTORY,
            "job_b": [],
        }
    finally:
        database.dispose()


def _json(value: object) -> object:
    """A JSON column's value as read by a raw query (text on SQLite, parsed on PostgreSQL)."""
    import json

    return json.loads(value) if isinstance(value, str) else value
