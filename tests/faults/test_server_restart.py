"""Fault 8: kill -9 of `backprop serve` and its workers while jobs run; restart loses nothing."""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.scenarios import restart_server

pytestmark = pytest.mark.slow


def test_killed_server_restarts_and_finishes_every_job(
    sqlite_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(sqlite_url)
    report = restart_server(cluster, jobs=3, workers=2)

    assert report.problems() == []
    assert report.running_at_kill >= 1
    assert report.succeeded == 3
    assert report.orphans == []
