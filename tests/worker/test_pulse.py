"""The pulse thread: it tells the training loop of a cancel (or a lost lease) within
a fraction of a second, by reading, long before the next lease renewal is due."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.jobs.pulse import LeaseView, Pulse
from app.jobs.queue import Claim, claim_next, requeue_expired
from app.storage.database import Database
from tests.conftest import MakeSettings
from tests.processes import wait_for
from tests.queue.rows import add_jobs, cancel, expire_lease, get_job

LONG_LEASE = 3600.0  # renewals every 20 minutes: only the cancel poll can be heard


@pytest.fixture
def pulse(migrated_db: Database, make_settings: MakeSettings) -> Iterator[Pulse]:
    settings = make_settings(migrated_db.url, lease_seconds=LONG_LEASE)
    pulse = Pulse(migrated_db, settings, worker_id="w")
    pulse.start()
    try:
        yield pulse
    finally:
        pulse.hold(None)
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
    pulse.hold(claim)
    expires = get_job(migrated_db, claim.job_id).lease_expires_at
    assert pulse.view == LeaseView()

    assert cancel(migrated_db, claim.job_id)[0]

    view = wait_for(lambda: pulse.view if pulse.view.cancel_requested else None, what="cancel")
    assert not view.lost
    assert get_job(migrated_db, claim.job_id).lease_expires_at == expires  # read, not renewed


def test_a_lost_lease_reaches_the_pulse_long_before_the_next_renewal(
    migrated_db: Database, pulse: Pulse
) -> None:
    claim = _claim(migrated_db)
    pulse.hold(claim)
    expire_lease(migrated_db, claim.job_id)
    assert requeue_expired(migrated_db, max_attempts=3) == 1  # back in the queue

    view = wait_for(lambda: pulse.view if pulse.view.lost else None, what="lost lease")
    assert not view.cancel_requested
