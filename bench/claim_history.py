"""What a worker's claim costs as its owner's finished jobs pile up.

The claim (app/jobs/fairness.py) orders the queued jobs by how many running jobs their
owner has and holds a sweep's trials at its ``max_parallel``: two counts of running jobs
per queued job, inside the queue's write transaction. This bench gives one owner 0,
1,000, 10,000 and 50,000 finished jobs, queues 48 more (a sweep's worth) each time and
times the 48 claims that take them (``claim_next``, one process, no other load). A claim
should cost the same whatever the history.

    .venv/bin/python bench/claim_history.py [--url postgresql+psycopg://...]

Without ``--url`` it runs on a fresh SQLite file. A PostgreSQL URL must name an empty
database (the bench migrates it).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, update

from app.jobs.queue import claim_next
from app.storage.database import Database
from app.storage.migrations import upgrade
from app.storage.tables import Job, JobStatus, Owner, utcnow

HISTORIES = (0, 1_000, 10_000, 50_000)
QUEUED = 48
NETWORK = {
    "input_size": 2,
    "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
}


def owner_row(db: Database) -> dict[str, Any]:
    """The columns every job of the bench shares (one owner, a tiny network)."""
    with db.session() as session:
        owner = Owner(name="bench")
        session.add(owner)
        session.flush()
        owner_id = owner.id
    return {"owner_id": owner_id, "network_config": NETWORK, "options": {"epochs": 5}, "epochs": 5}


def add(db: Database, row: dict[str, Any], count: int, status: str) -> None:
    """``count`` copies of ``row`` with ``status``, one microsecond apart."""
    if count <= 0:
        return
    start = utcnow()
    rows = [
        {
            **row,
            "id": f"job_{secrets.token_hex(8)}",
            "status": status,
            "created_at": start + timedelta(microseconds=i),
        }
        for i in range(count)
    ]
    with db.session() as session:
        session.execute(insert(Job), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an empty database (default: a fresh SQLite file)")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp(prefix='claim-bench-')}/bench.db"
    upgrade(url)
    db = Database(url)
    print(f"database: {db.url.split('://')[0]}; load {os.getloadavg()[0]:.2f}")
    row = owner_row(db)
    finished = 0
    for history in HISTORIES:
        add(db, row, history - finished, JobStatus.SUCCEEDED)
        finished = max(finished, history)
        add(db, row, QUEUED, JobStatus.QUEUED)
        times = []
        for _ in range(QUEUED):
            started = time.perf_counter()
            claim = claim_next(db, worker_id="bench", lease_seconds=30)
            times.append(time.perf_counter() - started)
            assert claim is not None
        with db.session() as session:
            session.execute(
                update(Job)
                .where(Job.status == JobStatus.RUNNING)
                .values(status=JobStatus.SUCCEEDED)
            )
        finished += QUEUED
        print(
            f"{history:>7,} finished jobs: claim median {statistics.median(times) * 1e3:.2f} ms,"
            f" max {max(times) * 1e3:.2f} ms ({QUEUED} claims)",
            flush=True,
        )
    db.dispose()


if __name__ == "__main__":
    main()
