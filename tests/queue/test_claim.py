"""claim_next: oldest first, one attempt each, and never the same job twice under a race."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Barrier

import pytest
from sqlalchemy import select

from app.jobs import fairness
from app.jobs.queue import claim_next, has_queued
from app.storage.database import Database
from app.storage.migrations import upgrade
from app.storage.tables import Job, JobStatus
from tests.queue.rows import add_jobs, get_job
from tests.storage.plans import query_plan


def test_empty_queue_gives_none(migrated_db: Database) -> None:
    assert claim_next(migrated_db, worker_id="w1", lease_seconds=30) is None


def test_has_queued_reads_without_the_write_lock(migrated_db: Database) -> None:
    """The idle worker's look: whether a job waits, answered on a bare connection while
    another transaction holds SQLite's write lock (a read takes none)."""
    assert not has_queued(migrated_db)
    (job_id,) = add_jobs(migrated_db, 1)
    assert has_queued(migrated_db)
    other = Database(migrated_db.url)
    try:
        with other.session() as session:  # BEGIN IMMEDIATE on SQLite: the write lock
            session.execute(select(Job.id).limit(1)).all()
            # Were it to want the lock, it would fail with "database is locked".
            assert has_queued(migrated_db)
    finally:
        other.dispose()
    claim = claim_next(migrated_db, worker_id="w1", lease_seconds=30)
    assert claim is not None and claim.job_id == job_id
    assert not has_queued(migrated_db)


def test_claims_oldest_first_and_counts_an_attempt(migrated_db: Database) -> None:
    first, second = add_jobs(migrated_db, 2)

    claim = claim_next(migrated_db, worker_id="w1", lease_seconds=30)

    assert claim is not None
    assert (claim.job_id, claim.attempt, claim.worker_id) == (first, 1, "w1")
    job = get_job(migrated_db, first)
    assert job.status == JobStatus.RUNNING
    assert job.lease_token == claim.lease_token
    assert job.worker_id == "w1"
    assert job.started_at is not None and job.lease_expires_at is not None
    assert job.lease_expires_at > job.started_at
    assert get_job(migrated_db, second).status == JobStatus.QUEUED

    other = claim_next(migrated_db, worker_id="w2", lease_seconds=30)
    assert other is not None and other.job_id == second
    assert other.lease_token != claim.lease_token
    assert claim_next(migrated_db, worker_id="w3", lease_seconds=30) is None


def _claim_all(
    url: str, name: str, start: Barrier, out: multiprocessing.Queue[tuple[str, list[str]]]
) -> None:
    database = Database(url)
    with database.session() as session:  # connected and warm before the race starts
        session.execute(select(Job.id).limit(1)).all()
    start.wait(timeout=120)  # all claimers begin together
    claimed = []
    while (claim := claim_next(database, worker_id=name, lease_seconds=30)) is not None:
        claimed.append(claim.job_id)
        # A worker runs the job before its next claim. Without this pause, SQLite's
        # busy handler (it sleeps, then retries) lets one tight loop keep the write
        # lock: one process took all the jobs, or starved another past the busy timeout.
        time.sleep(0.002)
    database.dispose()
    out.put((name, claimed))


def test_racing_processes_claim_each_job_once(migrated_db: Database) -> None:
    job_ids = add_jobs(migrated_db, 200)
    context = multiprocessing.get_context("spawn")
    claimers = 3
    start = context.Barrier(claimers + 1)
    out: multiprocessing.Queue[tuple[str, list[str]]] = context.Queue()
    processes = [
        context.Process(target=_claim_all, args=(migrated_db.url, f"w{i}", start, out))
        for i in range(claimers)
    ]
    for process in processes:
        process.start()
    start.wait(timeout=120)
    results = dict(out.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    claimed = [job_id for result in results.values() for job_id in result]
    assert sorted(claimed) == sorted(job_ids)  # every job, none twice
    assert sum(1 for result in results.values() if result) >= 2  # they did race
    with migrated_db.session() as session:
        rows = session.execute(select(Job.id, Job.status, Job.attempts, Job.worker_id)).all()
    assert {row.id: (row.status, row.attempts, row.worker_id) for row in rows} == {
        job_id: (JobStatus.RUNNING, 1, name) for name, jobs in results.items() for job_id in jobs
    }


@pytest.mark.parametrize("lease_seconds", [5.0, 30.0])
def test_lease_length_is_applied(migrated_db: Database, lease_seconds: float) -> None:
    (job_id,) = add_jobs(migrated_db)
    assert claim_next(migrated_db, worker_id="w", lease_seconds=lease_seconds)
    job = get_job(migrated_db, job_id)
    assert job.lease_expires_at is not None and job.started_at is not None
    remaining = (job.lease_expires_at - job.started_at).total_seconds()
    assert remaining == pytest.approx(lease_seconds, abs=1e-3)


def test_the_claims_counts_read_only_running_jobs(sqlite_url: str) -> None:
    # Each queued job's owner's and sweep's running jobs are counted through an index
    # that ends in the status, not by reading every job the owner or sweep ever had:
    # on the old single-column indexes a claim took 72 ms after 10,000 finished jobs.
    upgrade(sqlite_url)
    plan = query_plan(sqlite_url, fairness.claim_statement())
    counts = [line for line in plan if line.startswith(("SEARCH jobs_", "SCAN jobs_"))]
    assert counts == [
        "SEARCH jobs_1 USING COVERING INDEX ix_jobs_sweep_status (sweep_id=? AND status=?)",
        "SEARCH jobs_2 USING COVERING INDEX ix_jobs_owner_status (owner_id=? AND status=?)",
    ], plan
