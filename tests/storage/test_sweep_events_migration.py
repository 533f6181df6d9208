"""Migration 0009 numbers the ended trials of existing sweeps in the order they ended and
counts existing prediction runs' outputs toward the quota; and goes back down."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command

from app.storage.database import Database
from app.storage.migrations import alembic_config, upgrade

PLAIN = (
    "id", "owner_id", "status", "cancel_requested", "keep_model", "epoch", "epochs", "error",
    "attempts", "samples_trained", "train_seconds", "created_at", "finished_at", "kind",
    "sweep_id", "trial_index", "model_id", "rows_total", "result_sha256",
)  # fmt: skip
DOCUMENTS = ("network_config", "options", "findings")
CONFIG = {"network": {"input_size": 2, "layers": [{"units": 3, "activation": "softmax"}]}}


def test_ended_trials_are_numbered_and_prediction_outputs_counted(database_url: str) -> None:
    upgrade(database_url, "0008")
    database = Database(database_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    jobs = sa.table("jobs", *map(sa.column, PLAIN), *(sa.column(d, sa.JSON) for d in DOCUMENTS))
    sweep_columns = ("id", "owner_id", "name", "metric", "status", "created_at")
    sweep_docs = ("network", "job", "grid", "strategy", "trials")
    sweeps = sa.table(
        "sweeps", *map(sa.column, sweep_columns), *(sa.column(d, sa.JSON) for d in sweep_docs)
    )
    models = sa.table(
        "models",
        *map(sa.column, ("id", "owner_id", "weights_sha256", "weights_size", "created_at")),
        sa.column("config", sa.JSON),
    )

    def job(job_id: str, **values: object) -> dict[str, object]:
        row: dict[str, object] = dict(
            id=job_id, owner_id=1, status="succeeded", cancel_requested=False,
            keep_model=False, epoch=1, epochs=1, error=None, attempts=1, samples_trained=0,
            train_seconds=0.0, created_at=now, finished_at=None, kind="train", sweep_id=None,
            trial_index=None, model_id=None, rows_total=None, result_sha256=None,
            network_config={}, options={}, findings=[],
        )  # fmt: skip
        row.update(values)
        return row

    try:
        with database.engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO owners (id, name, created_at) VALUES (1, 'a', :t)"), {"t": now}
            )
            connection.execute(
                sweeps.insert().values(
                    id="swp_a", owner_id=1, name="s", metric="loss", status="running",
                    created_at=now, network={}, job={}, grid={}, strategy={"name": "grid"},
                    trials=[{}, {}, {}],
                )
            )  # fmt: skip
            connection.execute(
                models.insert().values(
                    id="mdl_a", owner_id=1, weights_sha256="0" * 64, weights_size=1,
                    created_at=now, config=CONFIG,
                )
            )  # fmt: skip
            later = now + timedelta(seconds=5)
            for row in (
                job("job_0", sweep_id="swp_a", trial_index=0, finished_at=later),
                job("job_1", sweep_id="swp_a", trial_index=1, finished_at=now),
                job("job_2", sweep_id="swp_a", trial_index=2, status="running"),
                job("pred_a", kind="predict", model_id="mdl_a", rows_total=10,
                    result_sha256="1" * 64, epochs=0),
            ):  # fmt: skip
                connection.execute(jobs.insert().values(**row))

        upgrade(database_url)
        with database.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, sweep_event FROM jobs")).all()
            numbered = {job_id: number for job_id, number in rows}
            events = connection.execute(sa.text("SELECT events FROM sweeps")).scalar_one()
            counted = connection.execute(
                sa.text("SELECT result_bytes FROM jobs WHERE id = 'pred_a'")
            ).scalar_one()
        assert numbered == {"job_1": 1, "job_0": 2, "job_2": None, "pred_a": None}
        assert events == 2
        assert counted == 128 + 10 * 3 * 4

        command.downgrade(alembic_config(database_url), "0008")
        with database.engine.connect() as connection:
            columns = connection.execute(sa.text("SELECT * FROM jobs")).keys()
        assert "sweep_event" not in columns and "result_bytes" not in columns
    finally:
        database.dispose()


def test_the_config_may_come_back_as_text() -> None:
    from importlib import import_module

    migration = import_module("migrations.versions.0009_sweep_events_and_output_bytes")
    assert migration._output_size(json.dumps(CONFIG), 2) == 128 + 2 * 3 * 4
