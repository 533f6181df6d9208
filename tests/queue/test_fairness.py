"""claim_next takes turns between owners and holds a sweep to its max_parallel: real
claims on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select, update

from app.jobs.endings import fail
from app.jobs.queue import Claim, claim_next
from app.storage.database import Database
from app.storage.tables import Job, Sweep
from tests.queue.rows import add_jobs


def _claim(db: Database, worker: str = "w") -> Claim | None:
    return claim_next(db, worker_id=worker, lease_seconds=60)


def _owner_of(db: Database, job_id: str) -> int:
    with db.read_session() as session:
        owner = session.scalar(select(Job.owner_id).where(Job.id == job_id))
    assert owner is not None
    return owner


def _as_sweep(db: Database, job_ids: list[str], max_parallel: int | None) -> str:
    """Make ``job_ids`` (one owner's) the trials of one sweep."""
    with db.session() as session:
        owner_id = session.scalar(select(Job.owner_id).where(Job.id == job_ids[0]))
        assert owner_id is not None
        sweep = Sweep(
            owner_id=owner_id,
            name="s",
            network={},
            job={},
            grid={},
            strategy={"name": "grid"},
            trials=[{} for _ in job_ids],
            metric="loss",
            max_parallel=max_parallel,
        )
        session.add(sweep)
        session.flush()
        for index, job_id in enumerate(job_ids):
            job = session.get(Job, job_id)
            assert job is not None
            job.sweep_id, job.trial_index = sweep.id, index
        return sweep.id


def test_a_big_sweep_does_not_starve_another_owners_job(migrated_db: Database) -> None:
    trials = add_jobs(migrated_db, 30, owner="alice")  # queued first, oldest
    _as_sweep(migrated_db, trials, None)
    (single,) = add_jobs(migrated_db, 1, owner="bob")
    alice = _owner_of(migrated_db, trials[0])

    first, second = _claim(migrated_db, "w1"), _claim(migrated_db, "w2")

    assert first is not None and second is not None
    assert first.job_id == trials[0]  # both owners idle: the oldest job
    assert second.job_id == single  # alice runs one, bob none: bob's turn
    third = _claim(migrated_db, "w3")
    assert third is not None and _owner_of(migrated_db, third.job_id) == alice


def test_owners_alternate_by_running_jobs(migrated_db: Database) -> None:
    alice_jobs = add_jobs(migrated_db, 4, owner="alice")
    bob_jobs = add_jobs(migrated_db, 4, owner="bob")
    carol_jobs = add_jobs(migrated_db, 2, owner="carol")
    order = []
    while (claim := _claim(migrated_db)) is not None:
        order.append(claim.job_id)
    owners = {**dict.fromkeys(alice_jobs, "a"), **dict.fromkeys(bob_jobs, "b")}
    owners.update(dict.fromkeys(carol_jobs, "c"))
    assert "".join(owners[job_id] for job_id in order) == "abcabcabab"
    # Within an owner, oldest first.
    assert [j for j in order if j in alice_jobs] == alice_jobs


def test_max_parallel_caps_a_sweeps_running_trials(migrated_db: Database) -> None:
    trials = add_jobs(migrated_db, 5, owner="alice")
    _as_sweep(migrated_db, trials, 2)
    first, second = _claim(migrated_db), _claim(migrated_db)
    assert first is not None and second is not None
    assert _claim(migrated_db) is None  # two running: the others wait
    (other,) = add_jobs(migrated_db, 1, owner="dave")  # not in the sweep: free to start
    third = _claim(migrated_db)
    assert third is not None and third.job_id == other
    assert fail(migrated_db, first, "stop")
    fourth = _claim(migrated_db)
    assert fourth is not None and fourth.job_id == trials[2]
    assert _claim(migrated_db) is None


def test_a_continued_trial_keeps_its_sweeps_age_against_other_owners(
    migrated_db: Database,
) -> None:
    """A halving promotion (a trial with a checkpoint) goes after its own sweep's fresh
    trials, not after every other owner's newer jobs."""
    trials = add_jobs(migrated_db, 2, owner="alice")
    _as_sweep(migrated_db, trials, None)
    with migrated_db.session() as session:  # trial 0 continues from epoch 5
        session.execute(
            update(Job)
            .where(Job.id == trials[0])
            .values(checkpoint_epoch=5, checkpoint_sha256="a" * 64)
        )
    (bobs,) = add_jobs(migrated_db, 1, owner="bob")  # newer than alice's sweep

    first = _claim(migrated_db, "w1")
    assert first is not None and first.job_id == trials[1]  # the sweep's fresh trial first
    assert fail(migrated_db, first, "done")
    second = _claim(migrated_db, "w2")  # both owners idle: the older sweep's continuation
    assert second is not None and second.job_id == trials[0]
    third = _claim(migrated_db, "w3")
    assert third is not None and third.job_id == bobs


def test_a_worker_claims_the_continued_trials_it_ran_first(migrated_db: Database) -> None:
    """Among a sweep's trials continuing from the same epoch, a worker takes those it ran
    last before older ones another worker ran (it may still hold their trainers:
    app/jobs/paused_trainers.py); with none of its own it takes the oldest."""
    trials = add_jobs(migrated_db, 4, owner="alice")
    _as_sweep(migrated_db, trials, None)
    last_ran = ["w2", "w1", "w2", "w1"]
    with migrated_db.session() as session:
        for job_id, worker in zip(trials, last_ran, strict=True):
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(checkpoint_epoch=5, checkpoint_sha256="a" * 64, worker_id=worker)
            )

    claimed = [_claim(migrated_db, worker) for worker in ("w1", "w3", "w1", "w1")]

    assert [c.job_id if c else None for c in claimed] == [
        trials[1],
        trials[0],
        trials[3],
        trials[2],
    ]
