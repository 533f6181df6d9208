"""Workers train from the blob store (file and s3): arrays memory-mapped from verified
local files; a corrupt blob fails the job naming it; an unreachable store sends the job
back to the queue instead of failing it; the final commit waits for the model's blob, and
a failed write of it commits nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update

from app.config import Settings, get_settings
from app.jobs import attempt as attempt_module
from app.jobs import worker as worker_module
from app.jobs.worker import Worker
from app.storage.blob_file import FileBlobStore
from app.storage.blob_s3 import S3BlobStore
from app.storage.blobs import BlobRef, BlobStoreUnavailable, open_blob_store, read_verified
from app.storage.database import Database
from app.storage.tables import Dataset, Job, JobStatus
from tests.blobhelpers import corrupt, unreachable_store
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import get_job, models_of
from tests.worker.jobs import add_training_jobs
from tests.worker.procs import start_worker, wait_exit


def _dataset(db: Database) -> Dataset:
    with db.read_session() as session:
        dataset = session.query(Dataset).one()
        return dataset


def test_a_worker_process_trains_from_the_blob_store(
    sqlite_db: Database, blob_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(
        sqlite_db.url, blob_url=blob_url, checkpoint_seconds=0, blob_cache_dir=tmp_path / "cache"
    )
    job_ids = add_training_jobs(sqlite_db, 2, epochs=3)

    log = tmp_path / "worker.log"
    assert wait_exit(start_worker(log, burst=True), log) == 0

    store = open_blob_store(settings)
    for job_id in job_ids:
        job = get_job(sqlite_db, job_id)
        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), log.read_text()
        (model,) = models_of(sqlite_db, job_id)
        assert read_verified(store, model.weights_sha256)[:2] == b"PK"  # an npz
    if isinstance(store, S3BlobStore):  # the worker cached x and y once, for both jobs
        dataset = _dataset(sqlite_db)
        assert store.cache.path_of(dataset.x_sha256).is_file()
        assert store.cache.path_of(dataset.y_sha256).is_file()


def test_a_corrupt_dataset_blob_fails_the_job_naming_it(
    sqlite_db: Database, blob_url: str, make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_db.url, blob_url=blob_url, blob_cache_dir=tmp_path / "c")
    (job_id,) = add_training_jobs(sqlite_db, 1, epochs=2)
    x_sha = _dataset(sqlite_db).x_sha256
    corrupt(open_blob_store(settings), x_sha)

    Worker(sqlite_db, Settings(poll_seconds=0.05)).run(burst=True)

    job = get_job(sqlite_db, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and x_sha in job.error and "corrupt" in job.error
    assert "features (x)" in job.error
    assert models_of(sqlite_db, job_id) == []


def _released(db: Database, job_id: str) -> bool:
    job = get_job(db, job_id)
    return job.worker_id is not None and job.status == JobStatus.QUEUED


def test_an_unreachable_store_puts_the_job_back_in_the_queue(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job_id,) = add_training_jobs(sqlite_db, 1, epochs=2)
    monkeypatch.setattr(worker_module, "STORE_RETRY_SECONDS", 0.05)
    settings = get_settings().model_copy(update={"poll_seconds": 0.05})
    worker = Worker(sqlite_db, settings, blobs=unreachable_store(tmp_path / "cache"))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(
            lambda: _released(sqlite_db, job_id),
            timeout=60,
            what="the worker to claim the job and give it back",
        )
    finally:
        worker.stopping.set()
        thread.join(timeout=60)
    job = get_job(sqlite_db, job_id)
    # Back in the queue, attempts not counted, no error: it runs once the store is back.
    assert (job.status, job.attempts, job.error) == (JobStatus.QUEUED, 0, None)

    Worker(sqlite_db, settings).run(burst=True)
    assert get_job(sqlite_db, job_id).status == JobStatus.SUCCEEDED


class _FaultyFileStore(FileBlobStore):
    """A real file store whose next ``failures`` writes of bytes that ``fails`` picks fail
    as a full disk would, and whose writes of bytes each take ``delay`` seconds more;
    ``local`` says which way the worker waits for a finished attempt's blobs (inside the
    final transaction, or before it)."""

    def __init__(
        self,
        root: Path,
        *,
        local: bool,
        failures: int = 0,
        fails: Callable[[bytes], bool] = lambda data: True,
        delay: float = 0.0,
    ) -> None:
        super().__init__(root)
        self.local = local
        self.failures, self.fails, self.delay = failures, fails, delay
        self.on_written: Callable[[], None] | None = None
        self.writes = 0

    def put_bytes(self, data: bytes, sha256: str | None = None) -> BlobRef:
        self.writes += 1
        if self.failures and self.fails(data):
            self.failures -= 1
            raise BlobStoreUnavailable(f"cannot write to the blob store {self.root}: disk full")
        time.sleep(self.delay)
        ref = super().put_bytes(data, sha256)
        if self.on_written is not None:
            self.on_written()
        return ref


def _is_checkpoint(data: bytes) -> bool:
    return b"state.json" in data  # a checkpoint's member; a model's npz has none


WAYS = [  # (a file store or not, OVERLAPPED_WRITE_BYTES)
    pytest.param(True, attempt_module.OVERLAPPED_WRITE_BYTES, id="in-transaction"),
    pytest.param(True, 0, id="large-blob-before-transaction"),
    pytest.param(False, attempt_module.OVERLAPPED_WRITE_BYTES, id="remote-before-transaction"),
]


def _pause_at(db: Database, job_id: str, epochs: int) -> None:
    """Make the job a sweep trial's rung: trained to ``epochs`` of its options' more."""
    with db.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(epochs=epochs))


@pytest.mark.parametrize(("local", "overlapped"), WAYS)
@pytest.mark.parametrize("failing", ["model", "checkpoint"])
def test_a_failed_blob_write_at_the_end_puts_the_job_back_and_commits_nothing(
    sqlite_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    local: bool,
    overlapped: int,
    failing: str,
) -> None:
    """A paused trial's model and checkpoint blobs are written beside the final commit's
    statements: when either write fails, the commit does not happen, the job goes back to
    the queue without an attempt counted, and it succeeds once the store writes (its
    model and its checkpoint then in the store)."""
    monkeypatch.setattr(attempt_module, "OVERLAPPED_WRITE_BYTES", overlapped)
    (job_id,) = add_training_jobs(sqlite_db, 1, epochs=4)
    _pause_at(sqlite_db, job_id, 2)
    monkeypatch.setattr(worker_module, "STORE_RETRY_SECONDS", 0.05)
    settings = get_settings().model_copy(update={"poll_seconds": 0.05, "checkpoint_seconds": 3600})
    fails = _is_checkpoint if failing == "checkpoint" else (lambda data: not _is_checkpoint(data))
    store = _FaultyFileStore(settings.data_dir / "blobs", local=local, failures=1, fails=fails)
    Worker(sqlite_db, settings, blobs=store).run(burst=True)
    job = get_job(sqlite_db, job_id)
    assert (job.status, job.attempts, job.error) == (JobStatus.SUCCEEDED, 1, None)
    assert store.failures == 0 and store.writes == 4  # two attempts, two blobs each
    (model,) = models_of(sqlite_db, job_id)
    assert job.checkpoint_sha256 is not None and job.checkpoint_epoch == 2
    assert store.exists(model.weights_sha256) and store.exists(job.checkpoint_sha256)


@pytest.mark.parametrize(("local", "overlapped"), WAYS)
def test_the_final_commit_waits_for_the_models_blob(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, local: bool, overlapped: int
) -> None:
    """A slow store (0.3 s a write): when the model's blob is in the store, the job is
    still running in the database; the commit that refers to the blob comes after."""
    monkeypatch.setattr(attempt_module, "OVERLAPPED_WRITE_BYTES", overlapped)
    (job_id,) = add_training_jobs(sqlite_db, 1, epochs=2)
    settings = get_settings().model_copy(update={"checkpoint_seconds": 3600})
    store = _FaultyFileStore(settings.data_dir / "blobs", local=local, delay=0.3)
    at_write: list[str] = []
    store.on_written = lambda: at_write.append(get_job(sqlite_db, job_id).status)
    Worker(sqlite_db, settings, blobs=store).run(burst=True)
    assert at_write == [JobStatus.RUNNING]
    assert get_job(sqlite_db, job_id).status == JobStatus.SUCCEEDED
    (model,) = models_of(sqlite_db, job_id)
    assert store.exists(model.weights_sha256)
