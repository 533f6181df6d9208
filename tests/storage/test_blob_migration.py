"""Migration 0005 moves the payloads of a database made at 0001 (then upgraded through
0004) into the blob store, and they still work: the dataset trains, the checkpointed job
resumes, the model predicts. Downgrading puts the payloads back into the rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command

from app.config import Settings
from app.engine.network import Network as EngineNetwork
from app.engine.npzio import dump as dump_arrays
from app.engine.npzio import load as load_arrays
from app.engine.training import Trainer, TrainingOptions
from app.jobs.worker import Worker
from app.services.datasets import load_dataset_arrays
from app.services.model_cache import ModelCache
from app.services.predict import load_model
from app.storage.blobs import BlobStore, open_blob_store, read_verified
from app.storage.database import Database
from app.storage.migrations import alembic_config, upgrade
from app.storage.tables import Dataset, Job, JobStatus
from app.storage.tables import Model as ModelRow

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 8, dtype=np.float32)
Y = np.array([0, 1, 1, 0] * 8, dtype=np.int64)
NETWORK: dict[str, Any] = {
    "input_size": 2,
    "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "loss": "binary_crossentropy",
    "init": "auto",
    "seed": 0,
}
OPTIONS = {"epochs": 4, "batch_size": 8}


SAMPLES: dict[int, int] = {}  # epoch -> samples trained by then, in the reference run
# The history the job row holds with its checkpoint (written in the same transaction).
HISTORY_AT_CHECKPOINT: list[dict[str, Any]] = []


def _payloads() -> tuple[bytes, bytes, dict[str, Any]]:
    """(checkpoint after 2 epochs, final weights npz, model config) of a real run."""
    trainer = Trainer(EngineNetwork.from_config(NETWORK), X, Y, TrainingOptions.from_dict(OPTIONS))
    taken: list[bytes] = []

    def on_epoch(entry: dict[str, float]) -> None:
        SAMPLES[int(entry["epoch"])] = trainer.samples_trained
        if entry["epoch"] == 2:
            taken.append(trainer.checkpoint())
            HISTORY_AT_CHECKPOINT[:] = [dict(e) for e in trainer.history]

    result = trainer.run(on_epoch=on_epoch)
    return taken[0], result.model.export_npz(), result.model.get_config()


def _insert_0001_rows(url: str, checkpoint: bytes, weights: bytes, config: dict[str, Any]) -> None:
    """Rows as a 0001 database held them (payloads inline), written with plain SQL."""
    now = datetime.now(UTC).replace(tzinfo=None)
    metadata = sa.MetaData()
    engine = sa.create_engine(url)
    try:
        metadata.reflect(engine)
        tables = metadata.tables
        with engine.begin() as connection:
            connection.execute(
                tables["owners"].insert(), [{"id": 1, "name": "a", "created_at": now}]
            )
            connection.execute(
                tables["networks"].insert(),
                [{"id": "net_1", "owner_id": 1, "name": "n", "config": NETWORK,
                  "parameter_count": 17, "created_at": now}],
            )  # fmt: skip
            connection.execute(
                tables["datasets"].insert(),
                [{"id": "ds_1", "owner_id": 1, "name": "xor", "n_samples": len(X),
                  "n_features": 2, "n_targets": 1, "label_kind": "categorical",
                  "classes": [0, 1], "feature_names": None, "stats": {}, "sha256": "0" * 64,
                  "data": dump_arrays({"x": X, "y": Y}), "created_at": now}],
            )  # fmt: skip
            job = {
                "owner_id": 1, "network_id": "net_1", "dataset_id": "ds_1",
                "init_model_id": None, "network_config": NETWORK, "options": OPTIONS,
                "cancel_requested": False, "keep_model": False, "epochs": 4, "metrics": None,
                "history": [], "error": None, "attempts": 1, "samples_trained": SAMPLES[2],
                "train_seconds": 0.1, "created_at": now,
            }  # fmt: skip
            connection.execute(
                tables["jobs"].insert(),
                [
                    {**job, "id": "job_1", "status": "queued", "epoch": 2,
                     "checkpoint": checkpoint, "checkpoint_epoch": 2,
                     "history": HISTORY_AT_CHECKPOINT},
                    {**job, "id": "job_0", "status": "succeeded", "epoch": 4,
                     "checkpoint": None, "checkpoint_epoch": None},
                ],
            )  # fmt: skip
            connection.execute(
                tables["models"].insert(),
                [{"id": "mdl_1", "owner_id": 1, "job_id": "job_0", "network_id": "net_1",
                  "config": config, "weights": weights, "metrics": None, "created_at": now}],
            )  # fmt: skip
    finally:
        engine.dispose()


def _store(tmp_path: Path) -> tuple[Settings, BlobStore]:
    settings = Settings(blob_url=(tmp_path / "migrated-blobs").as_uri())
    return settings, open_blob_store(settings)


def test_payloads_move_to_the_blob_store_and_still_work(database_url: str, tmp_path: Path) -> None:
    checkpoint, weights, config = _payloads()
    upgrade(database_url, "0001")
    _insert_0001_rows(database_url, checkpoint, weights, config)
    settings, store = _store(tmp_path)

    upgrade(database_url, settings=settings)

    db = Database(database_url)
    try:
        with db.read_session() as session:
            dataset = session.get(Dataset, "ds_1")
            job = session.get(Job, "job_1")
            model = session.get(ModelRow, "mdl_1")
            assert dataset is not None and job is not None and model is not None
        x, y = load_dataset_arrays(store, dataset)
        np.testing.assert_array_equal(x, X)
        np.testing.assert_array_equal(y, Y)
        assert (dataset.y_dtype, dataset.y_shape) == ("<i8", [len(Y)])
        assert dataset.size_bytes == sum(size for _, size, _ in store.iter_blobs()) - len(
            checkpoint
        ) - len(weights)
        assert job.checkpoint_sha256 is not None
        assert read_verified(store, job.checkpoint_sha256) == checkpoint
        assert read_verified(store, model.weights_sha256) == weights

        entry = load_model(db, store, ModelCache(2), settings, owner_id=1, model_id="mdl_1")
        assert entry.model.predict(X[:4]).shape == (4, 1)

        worker_settings = Settings(
            database_url=database_url, blob_url=settings.blob_url, poll_seconds=0.05
        )
        Worker(db, worker_settings).run(burst=True)
        with db.read_session() as session:
            resumed = session.get(Job, "job_1")
            assert resumed is not None
        assert (resumed.status, resumed.error, resumed.epoch) == (JobStatus.SUCCEEDED, None, 4)
        assert [entry["epoch"] for entry in resumed.history] == [1, 2, 3, 4]
        # 2 epochs before the migration, 2 after: resumed from the checkpoint (a fresh
        # start would have trained 4 more epochs on top of the 2).
        assert resumed.samples_trained == SAMPLES[4]
    finally:
        db.dispose()


def test_downgrade_puts_the_payloads_back(database_url: str, tmp_path: Path) -> None:
    checkpoint, weights, config = _payloads()
    upgrade(database_url, "0001")
    _insert_0001_rows(database_url, checkpoint, weights, config)
    settings, store = _store(tmp_path)
    upgrade(database_url, settings=settings)

    command.downgrade(alembic_config(database_url, blob_store=lambda: store), "0001")

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            data = connection.scalar(sa.text("SELECT data FROM datasets"))
            stored_weights = connection.scalar(sa.text("SELECT weights FROM models"))
            stored_checkpoint = connection.scalar(
                sa.text("SELECT checkpoint FROM jobs WHERE id = 'job_1'")
            )
    finally:
        engine.dispose()
    arrays = load_arrays(bytes(data))
    np.testing.assert_array_equal(arrays["x"], X)
    np.testing.assert_array_equal(arrays["y"], Y)
    assert (bytes(stored_weights), bytes(stored_checkpoint)) == (weights, checkpoint)


def test_a_migration_with_payloads_needs_a_store(sqlite_url: str) -> None:
    checkpoint, weights, config = _payloads()
    upgrade(sqlite_url, "0001")
    _insert_0001_rows(sqlite_url, checkpoint, weights, config)
    with pytest.raises(RuntimeError, match="backprop migrate"):
        command.upgrade(alembic_config(sqlite_url), "head")
