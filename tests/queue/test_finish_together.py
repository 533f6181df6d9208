"""Several jobs' final commits in one transaction (``endings.finish_together``, used for
a pack's trials that complete at the same epoch): each ends exactly as ``finish`` would
end it alone — a succeeded job with its model, nothing written for a job whose lease was
lost, and a job whose cancel was requested left for its own ending, which cancels it."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from app.jobs.endings import Finishing, Outcome, TrainedModel, finish, finish_together
from app.jobs.queue import Claim, Progress, claim_next, heartbeat
from app.storage.database import Database
from app.storage.tables import Job, JobStatus, Model
from tests.queue.rows import add_jobs, cancel, epoch_rows, get_job, models_of


def _progress(epoch: int) -> Progress:
    history = [{"epoch": e, "loss": 1.0 / e} for e in range(1, epoch + 1)]
    return Progress(
        epoch=epoch,
        metrics={"loss": 1.0 / epoch},
        history=history,
        samples_trained=4 * epoch,
        train_seconds=0.1,
    )


def _model(name: str) -> TrainedModel:
    return TrainedModel(config={"format": name}, weights_sha256=name, weights_size=3, metrics=None)


def _claims(db: Database, count: int) -> list[Claim]:
    add_jobs(db, count)
    claims = [claim_next(db, worker_id="w", lease_seconds=30) for _ in range(count)]
    assert all(claim is not None for claim in claims)
    return [claim for claim in claims if claim is not None]


def test_each_job_ends_as_it_would_alone(migrated_db: Database) -> None:
    done, lost, cancelled = _claims(migrated_db, 3)
    stolen = Claim(lost.job_id, "not-the-token", lost.worker_id, lost.attempt, lost.kind)
    cancel(migrated_db, cancelled.job_id, keep_model=True)
    hooks: list[str] = []
    items = [
        Finishing(
            claim,
            _progress(3),
            _model(claim.job_id),
            before_commit=lambda c=claim: hooks.append(c.job_id),
        )
        for claim in (done, stolen, cancelled)
    ]

    outcomes = finish_together(migrated_db, items)

    first, second, third = outcomes
    assert first is not None and first.status == JobStatus.SUCCEEDED and first.model_id
    assert second == Outcome(None)  # the lease is not ours: nothing written
    assert third is None  # its cancel was requested: left for its own ending
    assert hooks == [done.job_id]  # only a written job's blobs are awaited
    job = get_job(migrated_db, done.job_id)
    assert (job.status, job.epoch, job.metrics) == (JobStatus.SUCCEEDED, 3, {"loss": 1 / 3})
    assert [m.id for m in models_of(migrated_db, done.job_id)] == [first.model_id]
    assert get_job(migrated_db, lost.job_id).status == JobStatus.RUNNING
    assert models_of(migrated_db, lost.job_id) == []
    running = get_job(migrated_db, cancelled.job_id)
    assert running.status == JobStatus.RUNNING and running.cancel_requested
    # The cancelled job's own ending, as alone: cancelled, its model kept (keep_model).
    ending = finish(
        migrated_db, cancelled, _progress(3), _model("mine"), best=lambda: _model("best")
    )
    assert ending.status == JobStatus.CANCELLED
    assert [m.config for m in models_of(migrated_db, cancelled.job_id)] == [{"format": "best"}]
    assert heartbeat(migrated_db, lost, lease_seconds=30).ours  # the real owner still holds it


def test_a_failing_commit_writes_none_of_them(migrated_db: Database) -> None:
    first, second = _claims(migrated_db, 2)

    def broken() -> None:
        raise OSError("the blob store went away")

    items = [
        Finishing(first, _progress(2), _model("a")),
        Finishing(second, _progress(2), _model("b"), before_commit=broken),
    ]
    with pytest.raises(OSError, match="went away"):
        finish_together(migrated_db, items)

    for claim in (first, second):
        job = get_job(migrated_db, claim.job_id)
        assert job.status == JobStatus.RUNNING and job.epoch == 0
        assert models_of(migrated_db, claim.job_id) == []


def _written(db: Database, job_id: str) -> dict[str, Any]:
    """What a finish wrote for a job: its columns, its epochs' rows and its model."""
    job = get_job(db, job_id)
    return {
        "job": (job.status, job.epoch, job.metrics, job.findings, job.samples_trained),
        "more": (job.train_seconds, job.checkpoint_sha256, job.checkpoint_epoch, job.lease_token),
        "epochs": epoch_rows(db, job_id),
        "models": [(m.config, m.weights_sha256, m.metrics) for m in models_of(db, job_id)],
    }


def test_several_jobs_written_together_as_each_alone(migrated_db: Database) -> None:
    """Mixed column sets (a paused trial's checkpoint beside complete ones), no metrics,
    JSON nulls in the history, histories of different lengths (none at all included): the
    rows finish_together writes for each job are those finish writes for it alone."""

    def items(claims: list[Claim]) -> list[Finishing]:
        history = [{"epoch": e, "loss": 0.5, "note": None} for e in range(1, 5)]
        progress = [
            Progress(3, None, history[:3], 12, 0.25),
            Progress(4, {"loss": 0.1}, history[2:4], 16, 0.5, findings=[{"kind": "k"}]),
            Progress(2, None, [], 8, 0.75),
        ]
        models = [_model("a"), _model("b"), _model("c")]
        checkpoints = [None, "paused-here", None]
        return [
            Finishing(claim, p, m, checkpoint_sha256=c)
            for claim, p, m, c in zip(claims, progress, models, checkpoints, strict=True)
        ]

    claims = _claims(migrated_db, 6)
    together, alone = claims[:3], claims[3:]
    outcomes = finish_together(migrated_db, items(together))
    assert all(o is not None and o.status == JobStatus.SUCCEEDED for o in outcomes)
    for item in items(alone):
        finish(
            migrated_db,
            item.claim,
            item.progress,
            item.model,
            checkpoint_sha256=item.checkpoint_sha256,
        )
    for mine, theirs in zip(together, alone, strict=True):
        assert _written(migrated_db, mine.job_id) == _written(migrated_db, theirs.job_id)
    assert _written(migrated_db, together[1].job_id)["more"][1:3] == ("paused-here", 4)


def _continued(db: Database, claim: Claim) -> Claim:
    """The job of ``claim`` succeeded with a model, then queued again and claimed, as a
    promoted halving trial is: its next claim."""
    assert finish(db, claim, _progress(2), _model("rung")).status == JobStatus.SUCCEEDED
    with db.session() as session:
        session.execute(
            update(Job).where(Job.id == claim.job_id).values(status=JobStatus.QUEUED, epochs=4)
        )
    again = claim_next(db, worker_id="w", lease_seconds=30)
    assert again is not None and again.job_id == claim.job_id
    return again


def test_a_continued_jobs_new_model_replaces_its_old_one(migrated_db: Database) -> None:
    (claim,) = _claims(migrated_db, 1)
    again = _continued(migrated_db, claim)
    (old,) = models_of(migrated_db, claim.job_id)
    outcome = finish(migrated_db, again, _progress(4), _model("next"), continued=True)
    assert outcome.status == JobStatus.SUCCEEDED
    assert [m.config for m in models_of(migrated_db, claim.job_id)] == [{"format": "next"}]
    with migrated_db.read_session() as session:
        assert session.get(Model, old.id) is None  # nothing read it: deleted


def test_a_replaced_model_that_a_job_starts_reading_meanwhile_is_kept(
    migrated_db: Database,
) -> None:
    """A request that starts a job on the old model (a prediction run) locks the model,
    then writes its job; the replacing ending waits for that lock and then sees the job:
    the old model is kept, detached from the continued job, and the reader keeps its
    input. (On PostgreSQL the ending once tested the jobs before taking the lock, and
    deleted the model from under the new job.)"""
    db = migrated_db
    (claim,) = _claims(db, 1)
    again = _continued(db, claim)
    (reader,) = add_jobs(db, 1, owner="bob")  # queued: it will read the old model
    (old,) = models_of(db, claim.job_id)
    ended: list[Outcome] = []
    ending = threading.Thread(
        target=lambda: ended.append(finish(db, again, _progress(4), _model("next"), continued=True))
    )
    with db.session() as session:  # the request: lock the model, then write its job
        session.execute(select(Model.id).where(Model.id == old.id).with_for_update())
        session.execute(update(Job).where(Job.id == reader).values(model_id=old.id))
        ending.start()
        _until_waiting(db, ending)
    ending.join(timeout=60)
    assert ended and ended[0].status == JobStatus.SUCCEEDED
    assert [m.config for m in models_of(db, claim.job_id)] == [{"format": "next"}]
    with db.read_session() as session:
        kept = session.get(Model, old.id)
        assert kept is not None and kept.job_id is None  # kept as a model of its own
    assert get_job(db, reader).model_id == old.id


def _until_waiting(db: Database, ending: threading.Thread) -> None:
    """Until the ending waits for a lock the caller holds (PostgreSQL: a backend waits on
    a row lock; SQLite: for the write lock, given a moment to ask for it)."""
    if db.is_sqlite:
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 30
    probe = psycopg.connect(
        make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    )
    try:
        while time.monotonic() < deadline and ending.is_alive():
            waiting = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.01)
    finally:
        probe.close()
    raise AssertionError("the ending never waited for the model's lock")


@pytest.mark.parametrize("keep_model", [False, True])
def test_a_continued_job_cancelled_before_its_end_keeps_one_model(
    migrated_db: Database, keep_model: bool
) -> None:
    """A promoted trial cancelled mid-rung: without ``keep_model`` it keeps the model it
    had (its last finished rung's); with it, the best-so-far model replaces that one."""
    db = migrated_db
    (claim,) = _claims(db, 1)
    again = _continued(db, claim)
    (old,) = models_of(db, claim.job_id)
    cancel(db, claim.job_id, keep_model=keep_model)
    outcome = finish(
        db, again, _progress(4), _model("next"), best=lambda: _model("best"), continued=True
    )
    assert outcome.status == JobStatus.CANCELLED
    (model,) = models_of(db, claim.job_id)
    if keep_model:
        assert model.config == {"format": "best"} and outcome.model_id == model.id
        with db.read_session() as session:
            assert session.get(Model, old.id) is None
    else:
        assert model.id == old.id and outcome.model_id is None
