"""Rows for queue and worker tests, written straight to the database (no API)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select, update

from app.config import get_settings
from app.jobs.queue import enqueue, request_cancel
from app.storage.blob_arrays import put_array
from app.storage.blobs import BlobStore, open_blob_store
from app.storage.database import Database
from app.storage.tables import Dataset, Job, JobEpoch, JobStatus, Model, Network, Owner, utcnow

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.int64)
XOR_NETWORK: dict[str, Any] = {
    "input_size": 2,
    "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "loss": "binary_crossentropy",
    "init": "auto",
    "seed": 0,
}


def add_owner(db: Database, name: str = "alice") -> int:
    with db.session() as session:
        owner = Owner(name=name)
        session.add(owner)
        session.flush()
        return owner.id


def add_network(db: Database, owner_id: int, config: dict[str, Any] | None = None) -> str:
    with db.session() as session:
        network = Network(
            owner_id=owner_id, name="net", config=config or XOR_NETWORK, parameter_count=17
        )
        session.add(network)
        session.flush()
        return network.id


def add_dataset(
    db: Database,
    owner_id: int,
    x: np.ndarray = XOR_X,
    y: np.ndarray = XOR_Y,
    blobs: BlobStore | None = None,
) -> str:
    """A dataset row, its arrays in ``blobs`` (default: the store of the environment's
    settings, the one a worker built from ``Settings(...)`` uses too)."""
    blobs = blobs or open_blob_store(get_settings())
    x_ref, y_ref = put_array(blobs, x), put_array(blobs, y)
    with db.session() as session:
        dataset = Dataset(
            owner_id=owner_id,
            name="data",
            n_samples=len(x),
            n_features=x.shape[1],
            label_kind="categorical",
            classes=sorted({int(v) for v in y}),
            stats={},
            sha256="0" * 64,
            x_sha256=x_ref.sha256,
            y_sha256=y_ref.sha256,
            y_dtype=y.dtype.str,
            y_shape=list(y.shape),
            size_bytes=x_ref.size + y_ref.size,
        )
        session.add(dataset)
        session.flush()
        return dataset.id


def add_jobs(
    db: Database,
    count: int = 1,
    *,
    options: dict[str, Any] | None = None,
    network: dict[str, Any] | None = None,
    x: np.ndarray = XOR_X,
    y: np.ndarray = XOR_Y,
    owner: str = "alice",
) -> list[str]:
    """``count`` queued jobs (one owner, network and dataset), oldest first."""
    owner_id = add_owner(db, owner)
    network_id = add_network(db, owner_id, network)
    dataset_id = add_dataset(db, owner_id, x, y)
    opts = options or {"epochs": 5}
    ids = []
    for _ in range(count):
        with db.session() as session:
            job = enqueue(
                session,
                owner_id=owner_id,
                network_id=network_id,
                dataset_id=dataset_id,
                init_model_id=None,
                network_config=network or XOR_NETWORK,
                options=opts,
                epochs=int(opts.get("epochs", 5)),
            )
            ids.append(job.id)
    return ids


def get_job(db: Database, job_id: str) -> Job:
    with db.read_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def models_of(db: Database, job_id: str) -> list[Model]:
    with db.read_session() as session:
        return list(session.scalars(select(Model).where(Model.job_id == job_id)))


def cancel(db: Database, job_id: str, keep_model: bool = False) -> tuple[bool, Job]:
    """``request_cancel`` in a transaction of its own: (accepted, the job afterwards)."""
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        accepted = request_cancel(session, job, keep_model=keep_model)
        return accepted, job


def expire_lease(db: Database, job_id: str) -> None:
    """Pretend the job's worker vanished: its lease ran out a minute ago."""
    with db.session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
            .values(lease_expires_at=utcnow() - timedelta(minutes=1))
        )


def epoch_rows(db: Database, job_id: str) -> list[tuple[int, dict[str, Any]]]:
    """(epoch, record) of the job's ``job_epochs`` rows, in order."""
    with db.read_session() as session:
        rows = session.execute(
            select(JobEpoch.epoch, JobEpoch.record)
            .where(JobEpoch.job_id == job_id)
            .order_by(JobEpoch.epoch)
        ).all()
    return [(epoch, record) for epoch, record in rows]
