"""Backup while a job trains, restore into a new data directory, run it there.

Real processes: ``backprop serve`` plus a ``backprop worker`` train a job; ``backprop
backup`` runs while it does; ``backprop restore`` fills a fresh data directory, where a
second ``backprop serve`` (with its own worker) must list the same resources, predict
identically, and finish the job the backup caught running, resumed from its checkpoint,
bit-identical to the uninterrupted run.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from app.storage.blob_file import FileBlobStore
from app.storage.blobs import read_verified
from app.storage.database import Database
from app.storage.gc import referenced_blobs
from app.storage.tables import JobStatus
from tests.faults.conftest import MakeCluster
from tests.faults.harness import ApiClient, Cluster, ClusterConfig, Workload, weights_equal
from tests.faults.scenarios import reference_weights, wait_for_epoch
from tests.processes import backprop_command

pytestmark = pytest.mark.slow

RESOURCES = ("datasets", "networks", "models", "jobs")


def run_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        backprop_command(*args),
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def listing(api: ApiClient) -> dict[str, list[str]]:
    """The ids of every resource the caller can list."""
    return {
        kind: sorted(
            item["id"] for item in api.expect(200, "GET", f"/v1/{kind}?limit=500")["items"]
        )
        for kind in RESOURCES
    }


def test_backup_during_training_restores_and_finishes_bit_identical(
    sqlite_url: str, make_cluster: MakeCluster, tmp_path: Path
) -> None:
    cluster = make_cluster(sqlite_url)
    cluster.serve()
    worker = cluster.worker()
    api = cluster.client()
    # The worker is stopped (SIGSTOP) once epoch 20 is recorded, so the job is still
    # running when the backup, a process started then, reads the database, however fast
    # the machine (300 epochs of 1,000 rows once ended before it did).
    workload = Workload(epochs=300, n_samples=1000)
    network_id, dataset_id = workload.create(api)
    options = workload.options()
    reference = reference_weights(cluster, api, network_id, dataset_id, options)
    (reference_model,) = listing(api)["models"]
    job_id = api.submit_job(network_id, dataset_id, **options)
    wait_for_epoch(cluster.probe, job_id, 20, timeout=120)
    worker.stop()
    before = listing(api)
    rows = [[0.5, -0.25], [1.0, 0.5], [-1.0, 2.0]]
    prediction = api.predict(reference_model, rows).json()

    dest = tmp_path / "backup"
    made = run_cli(cluster, "backup", str(dest))
    assert made.returncode == 0, made.stderr
    worker.kill()  # the original's run of the job is not needed: the reference is
    snapshot = sqlite3.connect(dest / "backprop.db")
    try:
        (caught,) = snapshot.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        snapshot.close()
    assert caught == JobStatus.RUNNING, "the backup must be taken while the job trains"

    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["counts"]["jobs"] == 2 and manifest["counts"]["models"] == 1
    assert manifest["counts"]["blobs"] == len(manifest["files"]) - 1

    restored = Cluster(ClusterConfig(database_url="sqlite:///placeholder"), tmp_path / "restored")
    restored.config.database_url = f"sqlite:///{restored.workdir / 'data' / 'backprop.db'}"
    restored.key = cluster.key  # the restored database holds the original's key
    try:
        done = run_cli(restored, "restore", str(dest))
        assert done.returncode == 0, done.stderr
        assert "1 running then, queued again" in done.stdout
        refused = run_cli(restored, "restore", str(dest))
        assert refused.returncode == 1 and "is not empty" in refused.stderr

        # Every blob the restored database references is there and hashes to its name.
        db = Database(restored.config.database_url)
        try:
            shas = referenced_blobs(db)
        finally:
            db.dispose()
        store = FileBlobStore(restored.workdir / "data" / "blobs")
        assert len(shas) == manifest["counts"]["blobs"]
        for sha in shas:
            read_verified(store, sha)
        resumed_from = restored.probe.job(job_id)
        assert resumed_from.status == JobStatus.QUEUED
        assert resumed_from.checkpoint_epoch is not None and resumed_from.checkpoint_epoch >= 1

        # Compared before any worker runs: the resumed job may otherwise finish (and add
        # its model) before the listing is read.
        restored.serve(workers=0)
        there = restored.client()
        assert listing(there) == before
        assert there.predict(reference_model, rows).json() == prediction
        restored.worker()
        finished = there.wait_terminal([job_id], timeout=300)[job_id]
        assert finished["status"] == "succeeded", finished
        weights = there.weights(finished["model_id"])
        assert weights_equal(weights, reference)
        assert restored.probe.invariant_violations() == []
        assert there.server_errors == [] and api.server_errors == []
    finally:
        restored.close()
