"""The tables. A job row is also the queue entry (see app/jobs/queue.py)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A short unguessable id such as ``ds_3f9a0c1b2d4e5f60``."""
    return f"{prefix}_{secrets.token_hex(8)}"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobKind(StrEnum):
    """What a queue entry does: train a network, or run a stored model over a dataset
    (a batch prediction, or an evaluation too large to compute in a request)."""

    TRAIN = "train"
    PREDICT = "predict"
    EVALUATE = "evaluate"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def core_table(entity: type[Base]) -> Table:
    """A mapped class's Core table, for statements that need nothing of the ORM."""
    return cast(Table, entity.__table__)


class Owner(Base):
    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """Only the SHA-256 of a key is stored; ``prefix`` is its first characters, for display."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Dataset(Base):
    """A dataset's metadata; its arrays are blobs (app/storage/blobs.py): ``x`` a float32
    (n_samples, n_features) C-order ``.npy``, ``y`` an ``.npy`` of ``y_dtype``/``y_shape``."""

    __tablename__ = "datasets"
    # Lists are the owner's rows, newest first (services/ownership.py page): migration 0010.
    __table_args__ = (Index("ix_datasets_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ds"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    n_samples: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    n_targets: Mapped[int] = mapped_column(Integer, default=1)
    label_kind: Mapped[str] = mapped_column(String(20))  # categorical | continuous | multi_output
    classes: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    feature_names: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)  # x: mean/std/min/max; class_counts
    sha256: Mapped[str] = mapped_column(String(64))  # content hash of (x, y), see services
    x_sha256: Mapped[str] = mapped_column(String(64))  # blob: x as .npy
    y_sha256: Mapped[str] = mapped_column(String(64))  # blob: y as .npy
    y_dtype: Mapped[str] = mapped_column(String(16))  # numpy dtype.str, e.g. "<i8", "<U5"
    y_shape: Mapped[list[Any]] = mapped_column(JSON)  # [n] or [n, k]
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # both blobs together
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Network(Base):
    __tablename__ = "networks"
    # Lists are the owner's rows, newest first (services/ownership.py page): migration 0010.
    __table_args__ = (Index("ix_networks_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("net"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # app.engine Network.get_config()
    parameter_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A queue entry and its state; writes by a worker are fenced by ``lease_token``.

    ``kind`` says what it does (:class:`JobKind`). A training job uses the network,
    options, epochs and history columns. A prediction run or evaluation job reads the model
    ``model_id`` and the dataset, and reports ``rows_done`` of ``rows_total``;
    ``train_seconds`` is then its working time (rows/s = rows_done / train_seconds), and
    a prediction run's finished outputs are the ``.npy`` blob ``result_sha256``; the
    output pieces either kind wrote before it ended are ``output_parts`` (resumed by the
    next attempt)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        # The claim counts each queued job's owner's and sweep's running jobs
        # (app/jobs/fairness.py): with the status in the index, a count reads only those
        # rows, not every job the owner or sweep ever had (migration 0010).
        Index("ix_jobs_owner_status", "owner_id", "status"),
        Index("ix_jobs_sweep_status", "sweep_id", "status"),
        # Lists are the owner's rows, newest first (services/ownership.py page).
        Index("ix_jobs_owner_created", "owner_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("job"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    network_id: Mapped[str | None] = mapped_column(
        ForeignKey("networks.id", ondelete="SET NULL"), index=True
    )
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    init_model_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL", use_alter=True), index=True, default=None
    )
    network_config: Mapped[dict[str, Any]] = mapped_column(JSON)  # frozen at submit time
    options: Mapped[dict[str, Any]] = mapped_column(JSON)  # app.engine TrainingOptions.to_dict()
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    keep_model: Mapped[bool] = mapped_column(Boolean, default=False)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # app.engine.findings: [{"epoch", "layer", "kind", "message"}] drawn from the history
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # runs, the current one included
    # Attempts whose worker died (lease expired) before saving a checkpoint: only these count
    # toward BACKPROP_MAX_ATTEMPTS. ``attempt_start_epoch``: checkpoint_epoch at the claim.
    attempts_without_progress: Mapped[int] = mapped_column(Integer, default=0)
    attempt_start_epoch: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    worker_id: Mapped[str | None] = mapped_column(String(100), default=None)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # blob
    checkpoint_epoch: Mapped[int | None] = mapped_column(Integer, default=None)
    samples_trained: Mapped[int] = mapped_column(Integer, default=0)
    train_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    kind: Mapped[str] = mapped_column(String(16), default=JobKind.TRAIN, server_default="train")
    model_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL", use_alter=True), index=True, default=None
    )
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    rows_total: Mapped[int | None] = mapped_column(BigInteger, default=None)
    result_sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # blob
    # [{"rows": k, "sha256": ...}]: consecutive output rows written by earlier attempts
    output_parts: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    # A sweep's trial (app/jobs/sweep_advance.py): its sweep and its index in the sweep.
    sweep_id: Mapped[str | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), default=None
    )
    trial_index: Mapped[int | None] = mapped_column(Integer, default=None)
    # The number of its latest ending among its sweep's events (``sweeps.events``): the
    # id of its ``trial`` event on GET /v1/sweeps/{id}/events.
    sweep_event: Mapped[int | None] = mapped_column(Integer, default=None)
    # A prediction run's output bytes for the owner's quota: the estimate while it is
    # queued or running (reserved), the output blob's size once it succeeded.
    result_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)

    # The history, one row per finished epoch (see JobEpoch). Loaded with the job (one
    # SELECT ... IN); lists and the worker leave it unloaded (raiseload).
    epoch_rows: Mapped[list[JobEpoch]] = relationship(
        order_by="JobEpoch.epoch", lazy="selectin", viewonly=True
    )

    @property
    def history(self) -> list[dict[str, Any]]:
        """One history entry per finished epoch, in order (``loop.EpochLoop._end_epoch``)."""
        return [row.record for row in self.epoch_rows]


class Sweep(Base):
    """A hyperparameter search; its trials are ordinary jobs (``jobs.sweep_id``).

    ``network`` and ``job`` are the base bodies, ``grid`` maps a dotted path to its
    alternatives (or a distribution), ``trials`` holds each trial's params by path,
    ``strategy`` is ``{"name": "grid" | "random" | "halving", ...}``."""

    __tablename__ = "sweeps"
    # Lists are the owner's rows, newest first (services/ownership.py page): migration 0010.
    __table_args__ = (Index("ix_sweeps_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("swp"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    network: Mapped[dict[str, Any]] = mapped_column(JSON)
    job: Mapped[dict[str, Any]] = mapped_column(JSON)
    grid: Mapped[dict[str, Any]] = mapped_column(JSON)
    strategy: Mapped[dict[str, Any]] = mapped_column(JSON)
    trials: Mapped[list[Any]] = mapped_column(JSON)  # params by path, one dict per trial
    metric: Mapped[str] = mapped_column(String(64))
    max_parallel: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    # Trial endings numbered so far (app/jobs/sweep_advance.py): event ids, in commit order.
    events: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class JobEpoch(Base):
    """One finished epoch of a job: its history entry. Append-only: a worker writes the
    epochs it finished in the same fenced transaction as its progress (or checkpoint), after
    deleting any rows from those epochs on (left by an attempt that died after its last
    checkpoint), so epochs 1..jobs.epoch are there exactly once."""

    __tablename__ = "job_epochs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # the history entry


class Model(Base):
    """A trained (or imported) model. ``job_id`` is unique: a job makes at most one model."""

    __tablename__ = "models"
    # Lists are the owner's rows, newest first (services/ownership.py page): migration 0010.
    __table_args__ = (Index("ix_models_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mdl"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), unique=True, default=None
    )
    network_id: Mapped[str | None] = mapped_column(
        ForeignKey("networks.id", ondelete="SET NULL"), index=True
    )
    # The dataset its job trained on, kept when the job no longer holds the model (a
    # halving trial's rung model detached from it); null for an imported model and once
    # the dataset is deleted (migration 0012).
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True, default=None
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # app.engine Model.get_config()
    weights_sha256: Mapped[str] = mapped_column(String(64))  # blob: Model.export_npz()
    weights_size: Mapped[int] = mapped_column(BigInteger)  # its bytes (owner quota)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Evaluation(Base):
    """One evaluation of a model on a dataset: ``metrics`` as the API returns them."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ev"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)  # {} until a worker computed them
    # The worker job computing a large evaluation (its status is the evaluation's); None
    # for one computed in the request.
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True, default=None
    )


class WorkerHeartbeat(Base):
    """One row per live worker process; ``/readyz`` and ``/metrics`` read it."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    current_job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    jobs_done: Mapped[int] = mapped_column(Integer, default=0)
