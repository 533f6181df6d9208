"""The pulse thread: it tells the training loop of a cancel (or a lost lease) within
a fraction of a second, by reading, long before the next lease renewal is due."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from app.jobs import endings
from app.jobs import worker as worker_module
from app.jobs.pulse import Lease, LeaseView, Pulse
from app.jobs.queue import Claim, claim_next, requeue_expired
from app.jobs.worker import Worker
from app.storage.database import Database
from app.storage.tables import Job, JobStatus
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import add_jobs, cancel, expire_lease, get_job
from tests.worker.jobs import add_training_jobs

LONG_LEASE = 3600.0  # renewals every 20 minutes: only the cancel poll can be heard


@pytest.fixture
def pulse(migrated_db: Database, make_settings: MakeSettings) -> Iterator[Pulse]:
    settings = make_settings(migrated_db.url, lease_seconds=LONG_LEASE)
    pulse = Pulse(migrated_db, settings, worker_id="w")
    pulse.start()
    try:
        yield pulse
    finally:
        pulse.hold_all([])
        pulse.stop()
    assert not pulse.is_alive()


def _claim(db: Database) -> Claim:
    add_jobs(db)
    claim = claim_next(db, worker_id="w", lease_seconds=LONG_LEASE)
    assert claim is not None
    return claim


def test_a_cancel_reaches_the_pulse_long_before_the_next_renewal(
    migrated_db: Database, pulse: Pulse
) -> None:
    claim = _claim(migrated_db)
    (lease,) = pulse.hold_all([claim])
    expires = get_job(migrated_db, claim.job_id).lease_expires_at
    assert lease.view == LeaseView()

    assert cancel(migrated_db, claim.job_id)[0]

    view = wait_for(lambda: lease.view if lease.view.cancel_requested else None, what="cancel")
    assert lease.alarm.is_set()
    assert not view.lost
    assert get_job(migrated_db, claim.job_id).lease_expires_at == expires  # read, not renewed


def _pending_cancel(db: Database, job_id: str) -> None:
    """A queued job with its cancel pending, as requeue_expired leaves a keep_model
    cancel whose worker died after a checkpoint."""
    with db.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))


def test_a_cancel_pending_at_the_claim_raises_the_alarm_before_any_read(
    migrated_db: Database, make_settings: MakeSettings
) -> None:
    (job_id,) = add_jobs(migrated_db)
    _pending_cancel(migrated_db, job_id)
    claim = claim_next(migrated_db, worker_id="w", lease_seconds=LONG_LEASE)
    assert claim is not None and claim.cancel_requested
    # A pulse that never runs: the claim's own read is what the lease starts from.
    idle = Pulse(migrated_db, make_settings(migrated_db.url, lease_seconds=LONG_LEASE), "w")
    (lease,) = idle.hold_all([claim])
    assert lease.alarm.is_set()
    assert lease.view == LeaseView(cancel_requested=True)


def test_a_claim_without_a_pending_cancel_starts_quiet(migrated_db: Database, pulse: Pulse) -> None:
    claim = _claim(migrated_db)
    assert not claim.cancel_requested
    (lease,) = pulse.hold_all([claim])
    assert not lease.alarm.is_set() and lease.view == LeaseView()


def test_a_lost_lease_reaches_the_pulse_long_before_the_next_renewal(
    migrated_db: Database, pulse: Pulse
) -> None:
    claim = _claim(migrated_db)
    (lease,) = pulse.hold_all([claim])
    expire_lease(migrated_db, claim.job_id)
    assert requeue_expired(migrated_db, max_attempts=3) == 1  # back in the queue

    view = wait_for(lambda: lease.view if lease.view.lost else None, what="lost lease")
    assert not view.cancel_requested


# --- the worker's own ending is not a lost lease (the soak's false "lost the lease")


def test_a_lease_cleared_by_the_workers_own_ending_is_not_reported_lost(
    migrated_db: Database, make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    # A pulse polled by hand, exactly between the ending's commit and hold_all([]).
    held = Pulse(migrated_db, make_settings(migrated_db.url), worker_id="w")
    claim = _claim(migrated_db)
    (lease,) = held.hold_all([claim])
    lease.ending()
    assert endings.release(migrated_db, claim)  # the worker's final write: lease cleared

    with caplog.at_level(logging.WARNING, logger="backprop.worker"):
        held.poll(lease)

    assert lease.view == LeaseView()
    assert "lost the lease" not in caplog.text


def test_a_lease_taken_away_is_still_reported_lost_when_polled(
    migrated_db: Database, make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    held = Pulse(migrated_db, make_settings(migrated_db.url), worker_id="w")
    claim = _claim(migrated_db)
    (lease,) = held.hold_all([claim])
    expire_lease(migrated_db, claim.job_id)
    assert requeue_expired(migrated_db, max_attempts=3) == 1  # not the worker's doing

    with caplog.at_level(logging.WARNING, logger="backprop.worker"):
        held.poll(lease)

    assert lease.view.lost
    assert f"lost the lease of job {claim.job_id}" in caplog.text


def test_a_pulse_read_right_after_the_final_commit_logs_no_lost_lease(
    migrated_db: Database,
    make_settings: MakeSettings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real worker trains a job; its pulse reads the lease right after the final commit
    (before the worker's hold_all([])): the window where the soak saw 3 false warnings in
    143 jobs."""
    settings = make_settings(migrated_db.url, lease_seconds=LONG_LEASE, checkpoint_seconds=0)
    (job_id,) = add_training_jobs(migrated_db, epochs=3)
    pulses: list[tuple[Pulse, list[Lease]]] = []

    class Recorded(Pulse):
        def hold_all(self, claims: list[Claim], *, finished: int = 0) -> list[Lease]:
            leases = super().hold_all(claims, finished=finished)
            pulses.append((self, leases))
            return leases

    real_finish = endings.finish_item

    def finish_then_poll(db: Database, item: endings.Finishing, **kwargs: Any) -> Any:
        outcome = real_finish(db, item, **kwargs)
        pulse, leases = next(p for p in reversed(pulses) if p[1])
        pulse.poll(next(lease for lease in leases if lease.claim == item.claim))
        return outcome

    monkeypatch.setattr(worker_module, "Pulse", Recorded)
    monkeypatch.setattr(endings, "finish_item", finish_then_poll)
    with caplog.at_level(logging.INFO, logger="backprop.worker"):
        assert Worker(migrated_db, settings).run(burst=True) == 1

    assert get_job(migrated_db, job_id).status == JobStatus.SUCCEEDED
    assert f"job {job_id}: succeeded" in caplog.text  # the final commit ran, then the poll
    assert "lost the lease" not in caplog.text


def test_a_pulse_holding_several_leases_renews_and_polls_each_one(
    migrated_db: Database, make_settings: MakeSettings
) -> None:
    """A pack's trials: every lease is renewed, a cancel reaches that trial's lease alone,
    and a dropped lease is no longer renewed."""
    settings = make_settings(migrated_db.url, lease_seconds=3.0)  # renewals every 1 s
    pulse = Pulse(migrated_db, settings, worker_id="w")
    add_jobs(migrated_db, 3)
    claims = [claim_next(migrated_db, worker_id="w", lease_seconds=3.0) for _ in range(3)]
    held = [claim for claim in claims if claim is not None]
    assert len(held) == 3
    pulse.start()

    def expiry(claim: Claim) -> Any:
        return get_job(migrated_db, claim.job_id).lease_expires_at

    def renewal_of(claim: Claim) -> None:
        before = expiry(claim)
        wait_for(lambda: expiry(claim) > before or None, what="a renewal", timeout=10)

    try:
        leases = pulse.hold_all(held)
        before = {c.job_id: expiry(c) for c in held}
        wait_for(
            lambda: all(expiry(c) > before[c.job_id] for c in held) or None,
            what="every lease renewed",
            timeout=10,
        )
        assert cancel(migrated_db, held[1].job_id)[0]
        wait_for(lambda: leases[1].alarm.is_set() or None, what="the cancel", timeout=10)
        assert leases[1].view.cancel_requested
        assert not leases[0].alarm.is_set() and not leases[2].alarm.is_set()
        pulse.drop(leases[2])
        renewal_of(held[0])  # a round under way when it was dropped is over
        dropped = expiry(held[2])
        renewal_of(held[0])
        renewal_of(held[0])
        assert expiry(held[2]) == dropped
    finally:
        pulse.hold_all([])
        pulse.stop()
