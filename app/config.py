"""All settings of Backprop, read once from the environment (prefix ``BACKPROP_``)."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_workers() -> int:
    return os.cpu_count() or 1


def default_data_dir() -> Path:
    """The platform's per-user data directory for Backprop (created on first use).

    Linux and other Unix: ``$XDG_DATA_HOME/backprop`` or ``~/.local/share/backprop``;
    macOS: ``~/Library/Application Support/backprop``; Windows: ``%LOCALAPPDATA%/backprop``.
    """
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "backprop"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "backprop"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "backprop"


class Settings(BaseSettings):
    """Every ``BACKPROP_*`` variable; the README's configuration table lists the same."""

    model_config = SettingsConfigDict(env_prefix="BACKPROP_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder of the SQLite database and the blob store by default, and of "
        "temporary upload files (default: the per-user data folder, e.g. "
        "~/.local/share/backprop)",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user:pass@host/db "
        "(default: sqlite:///<data_dir>/backprop.db)",
    )
    blob_url: str = Field(
        default="",
        description="Where array payloads live: file:///path or s3://bucket/prefix "
        "(default: file://<data_dir>/blobs)",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of a non-AWS S3 store (MinIO, SeaweedFS, Ceph); credentials "
        "come from the standard AWS_* variables",
    )
    blob_cache_dir: Path | None = Field(
        default=None,
        description="Local cache of an s3 blob store's blobs (default: <data_dir>/blob-cache)",
    )
    blob_cache_bytes: int = Field(
        default=20 * 1024**3, gt=0, description="Size bound of the local blob cache (LRU)"
    )
    gc_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Unreferenced blobs younger than this are kept (in-flight writes)",
    )
    gc_interval_seconds: float = Field(
        default=3600.0, ge=0, description="How often `backprop serve` collects garbage (0 = never)"
    )
    public_url: str = Field(
        default="/",
        description="The API's base URL as clients see it (OpenAPI `servers`; `/`: this host)",
    )
    host: str = Field(default="127.0.0.1", description="Address `backprop serve` binds to")
    port: int = Field(default=8000, description="Port `backprop serve` listens on")
    workers: int = Field(
        default_factory=_default_workers,
        description="Worker processes started by `backprop serve` (default: number of cores)",
    )
    blas_threads: int = Field(
        default=0,
        ge=0,
        description="BLAS threads per process started by `backprop serve` (0 = cores / workers)",
    )
    bootstrap_key: str | None = Field(
        default=None, description="A key registered for owner `admin` at start (idempotent)"
    )
    lease_seconds: float = Field(default=30.0, gt=0, description="Job lease length")
    checkpoint_seconds: float = Field(
        default=10.0, ge=0, description="Minimum seconds between checkpoints (0 = every epoch)"
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Attempts without progress (the worker died before saving a checkpoint) "
        "before a job fails; attempts that advanced the checkpoint never count",
    )
    pack_trials: int = Field(
        default=4,
        ge=1,
        le=16,
        description="A worker claims up to this many queued trials of one sweep that differ "
        "only in learning rate, schedule, epochs, initial weights or early stopping, and "
        "trains them together, one NumPy call per operation for all (1 = one at a time)",
    )
    poll_seconds: float = Field(
        default=0.2,
        gt=0,
        description="How often an idle worker looks for queued jobs (at once when a job is "
        "queued: a commit to the SQLite file, PostgreSQL's NOTIFY; on PostgreSQL, and where "
        "the SQLite file cannot be watched, every 0.02 s for 5 s after its last job ended)",
    )
    key_cache_seconds: float = Field(
        default=2.0, ge=0, description="How long an API process caches a key lookup"
    )
    model_recheck_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long predict trusts a cached model before rechecking that it exists",
    )
    db_outage_grace_seconds: float = Field(
        default=60.0,
        ge=0,
        description="While the database is unreachable, a key or a cached model verified "
        "less than this long ago keeps answering predict (0: answer 503 at once)",
    )
    model_cache_size: int = Field(default=32, ge=1, description="Models kept loaded for predict")
    max_header_bytes: int = Field(
        default=16 * 1024,
        gt=0,
        description="Limit on a request's line and headers in bytes (more: 431)",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A connection whose request headers are not complete this long after it "
        "opened (or after its last response) is closed",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request whose body sends nothing for this long is answered 408",
    )
    keep_alive_seconds: int = Field(
        default=5, gt=0, description="Idle keep-alive connections are closed after this long"
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Request body limit (except uploads)"
    )
    max_upload_bytes: int = Field(
        default=4 * 1024**3, gt=0, description="Body limit of a dataset upload (streamed to disk)"
    )
    max_dataset_cells: int = Field(
        default=500_000_000, gt=0, description="Limit on dataset rows x features"
    )
    max_parameters: int = Field(default=5_000_000, gt=0, description="Limit on network parameters")
    max_job_sample_epochs: int = Field(
        default=50_000_000, gt=0, description="Limit on epochs x training samples per job"
    )
    max_predict_rows: int = Field(default=10_000, gt=0, description="Limit on rows per predict")
    max_activation_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Activation memory of one forward pass: predict runs its rows in blocks "
        "under this many bytes",
    )
    max_layer_units: int = Field(
        default=65_536, gt=0, description="Limit on the units of one layer (and the input size)"
    )
    max_job_cost: int = Field(
        default=10**13,
        gt=0,
        description="Limit on a job's estimated cost: epochs x training samples x parameters",
    )
    max_job_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="Run time (all attempts together) after which a job ends failed: "
        "training (its best model kept), prediction runs and worker-side evaluations",
    )
    max_active_jobs: int = Field(
        default=20,
        gt=0,
        description="Queued + running jobs allowed per owner (training jobs, prediction "
        "runs and worker-side evaluations together: each holds a worker)",
    )
    sync_evaluation_rows: int = Field(
        default=100_000,
        ge=0,
        description="An evaluation on a dataset with more rows runs in a worker (202)",
    )
    prediction_chunk_rows: int = Field(
        default=65_536,
        gt=0,
        description="Rows per chunk of a prediction run or worker-side evaluation (fewer "
        "when BACKPROP_MAX_ACTIVATION_BYTES requires)",
    )
    max_owner_bytes: int = Field(
        default=16 * 1024**3,
        gt=0,
        description="Storage quota of one owner: bytes of their datasets, models and "
        "prediction outputs",
    )
    max_streams_per_owner: int = Field(
        default=10, gt=0, description="Open job event streams allowed per owner and API process"
    )
    log_level: str = Field(default="info", description="Log level of server and workers")

    def default_database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'backprop.db'}"

    def make_data_dir(self) -> None:
        """Create ``data_dir`` when the database is the default SQLite file inside it."""
        if self.database_url == self.default_database_url():
            self.data_dir.mkdir(parents=True, exist_ok=True)

    @model_validator(mode="after")
    def _defaults_in_data_dir(self) -> Settings:
        """Fill the locations that default to places inside ``data_dir``."""
        if not self.database_url:
            self.database_url = self.default_database_url()
        if not self.blob_url:
            self.blob_url = (self.data_dir / "blobs").resolve().as_uri()
        if self.blob_cache_dir is None:
            self.blob_cache_dir = self.data_dir / "blob-cache"
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests clear this cache after changing the environment)."""
    return Settings()
