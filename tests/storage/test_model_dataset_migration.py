"""Migration 0012 gives each trained model the dataset of the job that made it (an
imported model none), and goes back down."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from app.storage.database import Database
from app.storage.migrations import alembic_config, upgrade


def test_models_get_their_jobs_dataset(database_url: str) -> None:
    upgrade(database_url, "0011")
    database = Database(database_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        with database.engine.begin() as connection:
            meta = sa.MetaData()
            owners, datasets, jobs, models = (
                sa.Table(name, meta, autoload_with=connection)
                for name in ("owners", "datasets", "jobs", "models")
            )
            connection.execute(owners.insert().values(id=1, name="a", created_at=now))
            connection.execute(
                datasets.insert().values(
                    id="ds_1", owner_id=1, name="d", n_samples=4, n_features=2, n_targets=1,
                    label_kind="categorical", stats={}, sha256="0" * 64, x_sha256="1" * 64,
                    y_sha256="2" * 64, y_dtype="<i8", y_shape=[4], size_bytes=1,
                    created_at=now,
                )
            )  # fmt: skip
            connection.execute(
                jobs.insert().values(
                    id="job_1", owner_id=1, dataset_id="ds_1", status="succeeded",
                    cancel_requested=False, keep_model=False, epoch=1, epochs=1, attempts=1,
                    attempts_without_progress=0, attempt_start_epoch=0, samples_trained=0,
                    train_seconds=0.0, created_at=now, kind="train", network_config={},
                    options={}, findings=[],
                )
            )  # fmt: skip
            for model_id, job_id in (("mdl_trained", "job_1"), ("mdl_imported", None)):
                connection.execute(
                    models.insert().values(
                        id=model_id, owner_id=1, job_id=job_id, config={},
                        weights_sha256="3" * 64, weights_size=1, created_at=now,
                    )
                )  # fmt: skip

        upgrade(database_url)
        with database.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, dataset_id FROM models")).all()
        assert dict(rows) == {"mdl_trained": "ds_1", "mdl_imported": None}

        command.downgrade(alembic_config(database_url), "0011")
        with database.engine.connect() as connection:
            columns = connection.execute(sa.text("SELECT * FROM models")).keys()
        assert "dataset_id" not in columns
    finally:
        database.dispose()
