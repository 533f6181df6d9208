"""A sweep's trials trained together by one worker (app/jobs/pack_claim.py, pack_run.py,
app/engine/pack.py): each trial ends with the model, history and score it has when the
trials are trained one at a time, bit for bit; one trial cancelled leaves the others
going; the companions a claim takes share the trial's configuration, stay in its sweep
and respect ``max_parallel``."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app.config import Settings
from app.jobs import endings, pack_claim, queue
from app.jobs import worker as worker_module
from app.jobs.pulse import Pulse
from app.jobs.worker import Worker
from app.storage.blobs import BlobStoreUnavailable
from app.storage.database import Database
from app.storage.tables import Job, JobStatus, Sweep, WorkerHeartbeat, utcnow
from tests.api.client import ApiClient
from tests.api.sweeps import create, make_data, sweep_body, trial_outcomes, work

RATES = [0.003, 0.01, 0.03, 0.1]
GRID = {"job.optimizer.learning_rate": RATES, "job.batch_size": [8, 32]}
STRATEGIES = [
    {"name": "grid"},
    {"name": "halving", "factor": 2, "min_epochs": 2},
]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s["name"])
def test_trials_trained_together_end_as_trained_one_at_a_time(
    client: ApiClient, db: Database, strategy: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    data = make_data(client)
    job = {"epochs": 6, "batch_size": 8, "validation_split": 0.2, "seed": 2}
    body = sweep_body(data, job=job, grid=GRID, strategy=strategy, metric="val_loss")
    together = create(client, {**body, "name": "together"})
    with caplog.at_level(logging.INFO, logger="backprop.worker"):
        work(db, pack_trials=4, worker_id="packs-4")
    messages = [r.getMessage() for r in caplog.records]
    packs = [m for m in messages if "trained together" in m]
    # Grid: one pack per batch size, of its four learning rates.
    assert sum(m.endswith("(a pack of 4)") for m in packs) >= 2, packs
    # The trials of a pack that complete at the same epoch end in one transaction on
    # SQLite (on PostgreSQL each in its own: endings.finish_together).
    together_endings = [m for m in messages if m.endswith("endings written in one transaction")]
    assert bool(together_endings) == db.is_sqlite, messages
    caplog.clear()
    alone = create(client, {**body, "name": "alone"})
    with caplog.at_level(logging.INFO, logger="backprop.worker"):
        work(db, pack_trials=1, worker_id="packs-1")
    assert not [r for r in caplog.records if "trained together" in r.getMessage()]
    assert trial_outcomes(client, db, together["id"]) == trial_outcomes(client, db, alone["id"])
    # Every ending numbered once, in the same count (GET /v1/sweeps/{id}/events' ids).
    assert _endings(db, together["id"]) == _endings(db, alone["id"])


def _endings(db: Database, sweep_id: str) -> int:
    """The sweep's count of trial endings, checked against its trials' last numbers: a
    grid's trials end once each, numbered 1..n; a halving trial's last number is its
    last ending's."""
    with db.read_session() as session:
        sweep = session.get(Sweep, sweep_id)
        last = list(session.scalars(select(Job.sweep_event).where(Job.sweep_id == sweep_id)))
    assert sweep is not None and sweep.status == JobStatus.SUCCEEDED
    assert len(set(last)) == len(last) and max(last) == sweep.events  # distinct, the last
    if sweep.strategy["name"] == "grid":
        assert sorted(last) == list(range(1, sweep.events + 1))
    return sweep.events


def test_a_cancel_landing_just_before_a_packs_final_commit_wins_for_its_trial(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trials of a pack end in one transaction; one whose cancel (keep_model) was
    requested just before it is ended on its own: cancelled, its model kept."""
    data = make_data(client)
    sweep = create(client, sweep_body(data, grid={"job.optimizer.learning_rate": RATES}))
    real = endings.finish_together
    cancelled: list[str] = []

    def cancel_one_then_finish(db: Database, items: Any, **kwargs: Any) -> Any:
        if len(items) > 1 and not cancelled:
            job_id = items[1].claim.job_id
            cancelled.append(job_id)
            body = {"keep_model": True}
            assert client.post(f"/v1/jobs/{job_id}/cancel", json=body).status_code == 202
        return real(db, items, **kwargs)

    monkeypatch.setattr(endings, "finish_together", cancel_one_then_finish)
    work(db, pack_trials=4, worker_id="packs-4")
    if not db.is_sqlite:  # one transaction per trial there: nothing to batch
        assert not cancelled
        return
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded" and len(cancelled) == 1
    statuses = {t["job_id"]: (t["status"], t["model_id"]) for t in done["trials"]}
    status, model_id = statuses.pop(cancelled[0])
    assert status == "cancelled" and model_id is not None  # keep_model: the best kept
    assert {s for s, _ in statuses.values()} == {"succeeded"}
    assert _endings(db, sweep["id"]) == len(RATES)


def test_a_pack_whose_joint_commit_fails_ends_each_trial_on_its_own(
    client: ApiClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = make_data(client)
    sweep = create(client, sweep_body(data, grid={"job.optimizer.learning_rate": RATES}))
    real = endings.finish_together
    failed: list[int] = []

    def store_away(db: Database, items: Any, **kwargs: Any) -> Any:
        if len(items) > 1:  # the pack's joint commit; each trial's own then succeeds
            failed.append(len(items))
            raise BlobStoreUnavailable("the blob store is away")
        return real(db, items, **kwargs)

    monkeypatch.setattr(endings, "finish_together", store_away)
    with caplog.at_level(logging.INFO, logger="backprop.worker"):
        work(db, pack_trials=4, worker_id="packs-4")
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    assert {t["status"] for t in done["trials"]} == {"succeeded"}
    assert all(t["model_id"] for t in done["trials"])
    assert failed == ([len(RATES)] if db.is_sqlite else [])
    messages = [r.getMessage() for r in caplog.records]
    assert any("endings not written together" in m for m in messages) == db.is_sqlite
    assert _endings(db, sweep["id"]) == len(RATES)


def test_a_cancelled_trial_leaves_its_pack_and_the_others_finish(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_data(client)
    job = {"epochs": 30, "batch_size": 8, "validation_split": 0.2, "seed": 2}
    sweep = create(client, sweep_body(data, job=job, grid={"job.optimizer.learning_rate": RATES}))
    real_claim = pack_claim.claim_pack
    cancelled: list[str] = []

    def claim_then_cancel_one(*args: Any, **kwargs: Any) -> list[queue.Claim]:
        claims = real_claim(*args, **kwargs)
        if len(claims) > 1 and not cancelled:  # a client cancels one trial of the pack
            cancelled.append(claims[1].job_id)
            assert client.post(f"/v1/jobs/{claims[1].job_id}/cancel").status_code == 202
        return claims

    monkeypatch.setattr(worker_module.pack_claim, "claim_pack", claim_then_cancel_one)
    work(db, pack_trials=4, worker_id="packs-4")
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    statuses = {t["job_id"]: t["status"] for t in done["trials"]}
    assert len(cancelled) == 1 and statuses.pop(cancelled[0]) == "cancelled"
    assert set(statuses.values()) == {"succeeded"}
    stopped = client.get(f"/v1/jobs/{cancelled[0]}").json()
    assert stopped["epoch"] < 30  # it left within a batch or so of the request
    for trial in done["trials"]:
        if trial["job_id"] != cancelled[0]:
            assert trial["epochs_run"] == 30


def _claim(db: Database, size: int) -> list[queue.Claim]:
    return pack_claim.claim_pack(db, worker_id="w", lease_seconds=30, size=size)


def test_companions_share_the_configuration_and_the_sweep(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    # Batch sizes differ: two packs of learning rates; another sweep of the same shape.
    first = create(client, sweep_body(data, grid=GRID))
    other = create(client, sweep_body(data, grid={"job.optimizer.learning_rate": RATES}))
    claims = _claim(db, size=8)
    assert len(claims) == 4 and len({c.job_id for c in claims}) == 4
    trials = {t["job_id"]: t for t in client.get(f"/v1/sweeps/{first['id']}").json()["trials"]}
    assert all(c.job_id in trials for c in claims)
    batch_sizes = {trials[c.job_id]["params"]["job.batch_size"] for c in claims}
    assert len(batch_sizes) == 1
    with db.read_session() as session:
        rows = session.execute(
            select(Job.status, Job.attempts, Job.worker_id, Job.lease_token).where(
                Job.id.in_([c.job_id for c in claims])
            )
        ).all()
    assert {(s, a, w) for s, a, w, _ in rows} == {(JobStatus.RUNNING, 1, "w")}
    assert all(token == claims[0].lease_token for *_, token in rows)
    for claim in claims:  # every lease is the job's own, fenced as any claim's
        assert queue.heartbeat(db, claim, lease_seconds=30).ours
    second = _claim(db, size=8)
    assert {trials[c.job_id]["params"]["job.batch_size"] for c in second} != batch_sizes
    third = _claim(db, size=8)  # the other sweep's, never mixed with the first's
    others = {t["job_id"] for t in client.get(f"/v1/sweeps/{other['id']}").json()["trials"]}
    assert {c.job_id for c in third} <= others and len(third) == 4
    assert _claim(db, size=8) == []


def test_a_workers_own_continued_trials_are_its_companions(client: ApiClient, db: Database) -> None:
    """A rung's continuations that one worker ran (and may still hold the trainers of)
    are claimed by it together, before older ones another worker ran."""
    data = make_data(client)
    sweep = create(client, sweep_body(data, grid={"job.optimizer.learning_rate": RATES}))
    trials = [t["job_id"] for t in client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"]]
    with db.session() as session:
        for job_id, worker in zip(trials, ["v", "v", "w", "w"], strict=True):
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(checkpoint_epoch=2, checkpoint_sha256="a" * 64, worker_id=worker)
            )
    assert sorted(c.job_id for c in _claim(db, size=2)) == sorted(trials[2:])


def test_companions_respect_max_parallel_and_pack_trials_one(
    client: ApiClient, db: Database
) -> None:
    data = make_data(client)
    create(client, sweep_body(data, grid=GRID, max_parallel=3))
    assert len(_claim(db, size=4)) == 3  # the sweep's cap, the first trial included
    assert _claim(db, size=4) == []  # full: nothing more of it starts
    data_2 = make_data(client)
    create(client, sweep_body(data_2, grid=GRID))
    assert len(_claim(db, size=1)) == 1


def test_trials_that_cannot_train_together_are_claimed_alone(
    client: ApiClient, db: Database
) -> None:
    data = make_data(client)
    job = {"epochs": 3, "batch_size": 16, "validation_split": 0.2, "seed": 2, "diagnostics": True}
    create(client, sweep_body(data, job=job, grid={"job.optimizer.learning_rate": RATES}))
    assert len(_claim(db, size=4)) == 1
    clipped = {**job, "diagnostics": False, "clip_norm": 1.0}
    data_2 = make_data(client)
    create(client, sweep_body(data_2, job=clipped, grid={"job.optimizer.learning_rate": RATES}))
    sizes = []
    while claims := _claim(db, size=4):
        sizes.append(len(claims))
    assert sizes == [1] * 7  # the rest of the first sweep, then the clipped one


def test_a_stop_signal_releases_every_trial_of_a_pack(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM's flag set while a pack trains: each trial stops within a batch and goes
    back to the queue; a later worker trains them all to the end."""
    data = make_data(client)
    job = {"epochs": 5, "batch_size": 8, "validation_split": 0.2, "seed": 2}
    sweep = create(client, sweep_body(data, job=job, grid={"job.optimizer.learning_rate": RATES}))
    settings = Settings(database_url=db.url, checkpoint_seconds=0, poll_seconds=0.05)
    worker = Worker(db, settings, "stopped")
    real_claim = pack_claim.claim_pack
    claimed: list[list[queue.Claim]] = []

    def claim_then_stop(*args: Any, **kwargs: Any) -> list[queue.Claim]:
        claims = real_claim(*args, **kwargs)
        claimed.append(claims)
        worker.stopping.set()  # the signal lands as the pack starts
        return claims

    monkeypatch.setattr(worker_module.pack_claim, "claim_pack", claim_then_stop)
    assert worker.run() == 0
    assert len(claimed) == 1 and len(claimed[0]) == 4
    with db.read_session() as session:
        rows = session.execute(
            select(Job.status, Job.lease_token, Job.epoch).where(Job.sweep_id == sweep["id"])
        ).all()
    assert [(status, token, epoch) for status, token, epoch in rows] == [
        (JobStatus.QUEUED, None, 0)
    ] * 4
    monkeypatch.setattr(worker_module.pack_claim, "claim_pack", real_claim)
    work(db, pack_trials=4, worker_id="packs-4")
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    assert {t["epochs_run"] for t in done["trials"]} == {5}


def _claim_at_once(db: Database, workers: int, size: int) -> list[list[queue.Claim]]:
    """``workers`` claims of up to ``size`` trials each, started together in threads."""
    barrier = threading.Barrier(workers, timeout=30)
    results: list[list[queue.Claim]] = [[] for _ in range(workers)]

    def claim(slot: int) -> None:
        barrier.wait()
        results[slot] = pack_claim.claim_pack(db, worker_id=f"w{slot}", lease_seconds=30, size=size)

    threads = [threading.Thread(target=claim, args=(slot,)) for slot in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_workers_claiming_at_once_take_disjoint_trials_within_max_parallel(
    client: ApiClient, db: Database
) -> None:
    data = make_data(client)
    create(client, sweep_body(data, grid=GRID, max_parallel=5))
    results = _claim_at_once(db, 2, size=4)
    ids = [c.job_id for claims in results for c in claims]
    assert len(ids) == len(set(ids))  # never the same trial twice
    # Never past the cap, not even by the first trial of a claim that counted while the
    # other's claims were uncommitted (PostgreSQL: the sweep's turn; SQLite: its lock).
    assert ids and len(ids) <= 5
    with db.read_session() as session:
        running = session.execute(
            select(Job.id, Job.worker_id).where(Job.status == JobStatus.RUNNING)
        ).all()
    assert sorted(running) == sorted((c.job_id, c.worker_id) for claims in results for c in claims)


@pytest.mark.parametrize("size", [1, 4])
def test_many_workers_claiming_at_once_never_pass_max_parallel(
    client: ApiClient, db: Database, size: int
) -> None:
    """Eight claims at once on a sweep capped at 2, alone or in packs: 2 trials run, and
    a claimer that finds another taking the sweep's trials takes none of them."""
    data = make_data(client)
    sweep = create(client, sweep_body(data, grid=GRID, max_parallel=2))
    for _ in range(3):  # the claims end nothing: each round may only fill the cap
        results = _claim_at_once(db, 8, size=size)
        ids = [c.job_id for claims in results for c in claims]
        assert len(ids) == len(set(ids))
        with db.read_session() as session:
            running = session.scalars(
                select(Job.id).where(Job.sweep_id == sweep["id"], Job.status == JobStatus.RUNNING)
            ).all()
        assert 1 <= len(running) <= 2 and set(ids) <= set(running)


def test_a_claimer_finding_a_capped_sweeps_turn_taken_claims_from_the_next_sweep(
    client: ApiClient, db: Database
) -> None:
    """PostgreSQL: while another claimer holds the turn of the capped sweep at the head
    of the queue, a claim takes the next sweep's trials instead (not nothing, and not
    the capped sweep's, whose running count may miss the other's claims); once the turn
    is free, the capped sweep's trials come first again."""
    if db.is_sqlite:
        pytest.skip("SQLite's write lock serialises claims: no turns")
    data = make_data(client)
    capped = create(client, sweep_body(data, grid=GRID, max_parallel=2))
    other = create(client, sweep_body(data, name="other"))
    with db.session() as holder:  # another claimer, inside its transaction
        turn = {"sweep_id": capped["id"], "companions": True}
        assert holder.execute(pack_claim._CAP_AND_TURN, turn).one() == (2, True)
        claims = pack_claim.claim_pack(db, worker_id="w", lease_seconds=30, size=4)
        assert claims and {_sweep_of(db, c.job_id) for c in claims} == {other["id"]}
    claims = pack_claim.claim_pack(db, worker_id="w", lease_seconds=30, size=4)
    assert len(claims) == 2 and {_sweep_of(db, c.job_id) for c in claims} == {capped["id"]}


def test_a_claimer_takes_the_next_trial_while_another_is_taking_the_first(
    client: ApiClient, db: Database
) -> None:
    """PostgreSQL: trials that train alone (per-layer statistics), one of them being
    claimed in another transaction not yet committed: a claim takes the other one, not
    nothing (the queue's head is read skipping locked rows, and taken when the trial
    chosen in its place turns out to be locked)."""
    if db.is_sqlite:
        pytest.skip("SQLite's write lock serialises claims")
    data = make_data(client)
    job = {"epochs": 3, "batch_size": 16, "validation_split": 0.2, "diagnostics": True}
    sweep = create(client, sweep_body(data, job=job))  # two trials, each alone
    with db.session() as holder:
        (first,) = pack_claim.claim_pack_in(holder, worker_id="a", lease_seconds=30, size=4)
        (second,) = pack_claim.claim_pack(db, worker_id="b", lease_seconds=30, size=4)
        assert first.job_id != second.job_id
    assert {_sweep_of(db, c.job_id) for c in (first, second)} == {sweep["id"]}


def _sweep_of(db: Database, job_id: str) -> str | None:
    with db.read_session() as session:
        return session.scalar(select(Job.sweep_id).where(Job.id == job_id))


def test_a_packs_companions_carry_their_pending_cancels(client: ApiClient, db: Database) -> None:
    """Each claim of a pack reads its trial's cancel flag (a trial back in the queue with a
    cancel pending): the pulse raises that trial's alarm from the start."""
    data = make_data(client)
    create(client, sweep_body(data, grid={"job.optimizer.learning_rate": RATES}))
    with db.session() as session:
        queued = list(session.scalars(select(Job.id).order_by(Job.trial_index)))
        session.execute(update(Job).where(Job.id == queued[1]).values(cancel_requested=True))
    claims = _claim(db, size=len(RATES))
    pending = {claim.job_id: claim.cancel_requested for claim in claims}
    assert len(claims) == len(RATES) and pending.pop(queued[1]) is True
    assert set(pending.values()) == {False}
    leases = Pulse(db, Settings(database_url=db.url), "w").hold_all(claims)
    assert {lease.claim.job_id for lease in leases if lease.alarm.is_set()} == {queued[1]}


def _live_worker(db: Database, worker_id: str) -> None:
    with db.session() as session:
        session.add(WorkerHeartbeat(id=worker_id, hostname="h", pid=1))


def test_a_claimer_leaves_a_trial_for_each_idle_worker(client: ApiClient, db: Database) -> None:
    """Near a sweep's end (few trials queued) a claimer takes fewer companions, so that
    every other live worker with nothing running gets a trial; a worker that runs a job,
    or whose heartbeat is old, is not waited for; with enough queued, packs stay whole."""
    data = make_data(client)
    create(client, sweep_body(data, grid={"job.optimizer.learning_rate": RATES}))
    _live_worker(db, "idle-1")
    _live_worker(db, "idle-2")
    with db.session() as session:  # an old heartbeat: that worker is not live
        session.add(
            WorkerHeartbeat(
                id="gone", hostname="h", pid=2, heartbeat_at=utcnow() - timedelta(minutes=5)
            )
        )
    _live_worker(db, "w")  # the claimer itself: never counted as idle
    first = _claim(db, size=len(RATES))  # 4 queued: 3 left after the first, 2 idle workers
    assert len(first) == 2
    assert len(_claim(db, size=len(RATES))) == 1  # 1 queued left for the 1 idle worker
    assert len(_claim(db, size=len(RATES))) == 1


def test_packs_stay_whole_while_enough_trials_are_queued(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    grid = {"job.optimizer.learning_rate": RATES, "job.seed": [1, 2, 3]}
    create(client, sweep_body(data, grid=grid))  # 12 trials, packs of 4 by seed
    _live_worker(db, "idle-1")
    assert [len(_claim(db, size=4)) for _ in range(3)] == [4, 4, 3]  # 1 left for idle-1


def test_the_longest_work_of_a_stage_is_claimed_first(client: ApiClient, db: Database) -> None:
    """Three trials that train alone (per-layer statistics) are queued before three of
    the same cost each that pack: the pack of three is the longer work, claimed first; a
    trial alone with more epochs left goes before the pack, though queued after the rest;
    one at a time, the queue's order holds; a trial continuing from a later epoch waits
    for its stage, however long."""
    data = make_data(client)
    grid = {"job.diagnostics": [True, False], "job.optimizer.learning_rate": [0.01, 0.03, 0.1]}
    sweep = create(client, sweep_body(data, grid=grid))
    by_job = {t["job_id"]: t for t in client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"]}
    with db.read_session() as session:
        queued = list(session.scalars(select(Job.id).order_by(Job.created_at)))
    alone = [job_id for job_id in queued if by_job[job_id]["params"]["job.diagnostics"]]
    packed = sorted(set(queued) - set(alone))
    assert queued[:3] == alone  # equal costs each: queued in grid order
    assert sorted(c.job_id for c in _claim(db, size=4)) == packed
    assert [[c.job_id for c in _claim(db, size=4)] for _ in range(3)] == [[j] for j in alone]

    again = create(client, {**sweep_body(data, grid=grid), "name": "again"})
    trials = {t["index"]: t["job_id"] for t in again["trials"]}
    longer = trials[2]  # trains alone, the last of those queued
    with db.session() as session:
        session.execute(update(Job).where(Job.id == longer).values(epochs=40))
    assert [c.job_id for c in _claim(db, size=4)] == [longer]
    assert len(_claim(db, size=4)) == 3  # then the pack
    while _claim(db, size=4):  # and the rest
        pass

    later = create(client, {**sweep_body(data, grid=grid), "name": "later"})
    first = later["trials"][0]["job_id"]
    with db.session() as session:  # far more epochs left, but from a later epoch
        session.execute(
            update(Job)
            .where(Job.id == first)
            .values(checkpoint_epoch=1, checkpoint_sha256="a" * 64, epochs=500)
        )
    one_by_one = [c.job_id for _ in range(6) for c in _claim(db, size=1)]
    assert one_by_one[-1] == first and len(one_by_one) == 6


def test_a_workers_own_continued_trials_go_before_longer_ones(
    client: ApiClient, db: Database
) -> None:
    """A worker that paused some of a stage's trials claims those (it may hold their
    trainers) before longer ones another worker paused; a worker that paused none takes
    the longest."""
    data = make_data(client)
    grid = {"job.batch_size": [4, 32], "job.optimizer.learning_rate": RATES}
    sweep = create(client, sweep_body(data, grid=grid))
    trials = client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"]
    small = [t["job_id"] for t in trials if t["params"]["job.batch_size"] == 4]  # more steps
    big = [t["job_id"] for t in trials if t["params"]["job.batch_size"] == 32]
    _pause(db, small, "v")
    _pause(db, big, "w")
    with db.session() as session:  # queued first, so the claim order's next
        first = min(session.scalars(select(Job.created_at).where(Job.id.in_(small))))
        earlier = first - timedelta(seconds=1)
        session.execute(update(Job).where(Job.id.in_(big)).values(created_at=earlier))
    taken = pack_claim.claim_pack(db, worker_id="u", lease_seconds=30, size=4)
    assert sorted(c.job_id for c in taken) == sorted(small)  # ran none: the longest
    assert len(pack_claim.claim_pack(db, worker_id="x", lease_seconds=30, size=4)) == 4
    sweep_2 = create(client, {**sweep_body(data, grid=grid), "name": "again"})
    trials = client.get(f"/v1/sweeps/{sweep_2['id']}").json()["trials"]
    small = [t["job_id"] for t in trials if t["params"]["job.batch_size"] == 4]
    big = [t["job_id"] for t in trials if t["params"]["job.batch_size"] == 32]
    _pause(db, small, "v")
    _pause(db, big, "w")
    assert sorted(c.job_id for c in _claim(db, size=4)) == sorted(big)  # w's own


def _pause(db: Database, job_ids: list[str], worker_id: str) -> None:
    """As if ``worker_id`` had trained ``job_ids`` to epoch 1 and paused them there."""
    with db.session() as session:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(checkpoint_epoch=1, checkpoint_sha256="a" * 64, worker_id=worker_id)
        )
