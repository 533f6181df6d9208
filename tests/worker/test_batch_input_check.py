"""A prediction run or evaluation maps its dataset before the blob's hash is checked (the
check runs beside the first chunks) but stores nothing computed from it until the check
passed: a corrupt x fails the job naming the blob, with no outputs, pieces or metrics."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import Settings
from app.jobs.worker import Worker
from app.storage import blob_file
from app.storage.blob_arrays import load_array_checked_later
from app.storage.blob_file import FileBlobStore
from app.storage.blobs import BlobCorrupt, open_blob_store
from app.storage.database import Database
from app.storage.tables import Dataset, Evaluation, JobKind, JobStatus
from tests.blobhelpers import corrupt
from tests.conftest import MakeSettings
from tests.queue.rows import get_job
from tests.worker.batch_rows import add_batch_job

ROWS = 3000
X = np.random.default_rng(8).normal(size=(ROWS, 4)).astype(np.float32)
Y = np.arange(ROWS) % 2
NETWORK = {
    "input_size": 4,
    "layers": [{"units": 8, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
    "loss": "binary_crossentropy",
    "seed": 2,
}


def _add_job(db: Database, kind: JobKind) -> tuple[str, str]:
    """A binary classifier, a dataset and a queued job of ``kind``: (job id, x's hash)."""
    rows = add_batch_job(
        db,
        owner=f"owner-{kind}",
        kind=kind,
        network=NETWORK,
        task="binary",
        classes=[0, 1],
        x=X,
        y=Y,
    )
    with db.session() as session:
        dataset = session.get(Dataset, rows.dataset_id)
        assert dataset is not None
        return rows.job_id, dataset.x_sha256


def _flip_last_byte(store: FileBlobStore, sha256: str, *, nan: bool = False) -> None:
    """Damage the data, not the header: the file still maps as an array. With ``nan``
    the last value becomes NaN: its row's outputs overflow too."""
    path = store.path_of(sha256)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    if nan:
        data[-4:] = np.float32(np.nan).tobytes()
    else:
        data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    blob_file._verified.discard(str(path.resolve()))  # as in a fresh worker process


def test_the_map_comes_before_the_check_and_the_check_names_the_blob(
    sqlite_db: Database, make_settings: MakeSettings
) -> None:
    settings = make_settings(sqlite_db.url)
    store = open_blob_store(settings)
    assert isinstance(store, FileBlobStore)
    _, x_sha = _add_job(sqlite_db, JobKind.PREDICT)
    _flip_last_byte(store, x_sha)
    x, check = load_array_checked_later(store, x_sha)
    assert x.shape == X.shape and not np.array_equal(x, X)
    with pytest.raises(BlobCorrupt, match=x_sha):
        check()


@pytest.mark.parametrize("kind", [JobKind.PREDICT, JobKind.EVALUATE])
@pytest.mark.parametrize("damage", ["data", "nan", "header"])
def test_a_corrupt_dataset_fails_the_run_and_stores_nothing(
    sqlite_db: Database, make_settings: MakeSettings, kind: JobKind, damage: str
) -> None:
    settings: Settings = make_settings(sqlite_db.url, checkpoint_seconds=0)
    store = open_blob_store(settings)
    assert isinstance(store, FileBlobStore)
    job_id, x_sha = _add_job(sqlite_db, kind)
    if damage in ("data", "nan"):
        _flip_last_byte(store, x_sha, nan=damage == "nan")
    else:
        corrupt(store, x_sha)
        blob_file._verified.discard(str(store.path_of(x_sha).resolve()))

    Worker(sqlite_db, settings).run(burst=True)

    job = get_job(sqlite_db, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and x_sha in job.error and "corrupt" in job.error
    assert job.error.startswith("cannot start: the dataset's features (x): ")
    assert job.result_sha256 is None and not job.output_parts
    with sqlite_db.read_session() as session:
        evaluations = session.query(Evaluation).filter(Evaluation.job_id == job_id).all()
        assert all(row.metrics == {} for row in evaluations)
