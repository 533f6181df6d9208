"""Fault 2: a worker dies before, inside and after a checkpoint write and the final commit."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.storage.database import Database
from app.storage.tables import Job, Model, Owner
from tests.faults.conftest import MakeCluster
from tests.faults.harness import Workload
from tests.faults.scenarios import CRASH_POINTS, crash_around_commits


@pytest.mark.slow
def test_crashes_around_commits_leave_one_model_per_succeeded_job(
    sqlite_url: str, make_cluster: MakeCluster
) -> None:
    # A crash worker may pick up an earlier crashed job: room for several crashes per job.
    cluster = make_cluster(sqlite_url, max_attempts=10)
    cluster.serve()
    report = crash_around_commits(cluster, cluster.client(), workload=Workload(epochs=20))

    assert report.problems() == []
    assert report.exit_codes == dict.fromkeys(CRASH_POINTS, 137)
    assert report.outcomes == dict.fromkeys(CRASH_POINTS, "succeeded")
    assert report.integrity == "ok"


def test_the_database_refuses_a_second_model_for_a_job(migrated_db: Database) -> None:
    """The last line of defence behind "at most one model per job": a unique index."""
    with migrated_db.session() as session:
        owner = Owner(name="o")
        session.add(owner)
        session.flush()
        job = Job(owner_id=owner.id, network_config={}, options={}, epochs=1)
        session.add(job)
        session.flush()
        session.add(
            Model(owner_id=owner.id, job_id=job.id, config={}, weights_sha256="", weights_size=0)
        )
        job_id, owner_id = job.id, owner.id
    with pytest.raises(IntegrityError), migrated_db.session() as session:
        session.add(
            Model(owner_id=owner_id, job_id=job_id, config={}, weights_sha256="", weights_size=0)
        )
    with migrated_db.read_session() as session:
        assert session.scalar(select(func.count()).where(Model.job_id == job_id)) == 1
