"""Item 5 of issue 18: a cancel recorded before the final commit wins, in each narrow
window (the last epoch, the final commit, a graceful stop's release, a time-limit failure)."""

from __future__ import annotations

import pytest

from tests.faults.cancel_windows import cancel_windows
from tests.faults.conftest import MakeCluster
from tests.faults.harness import Workload

pytestmark = pytest.mark.slow


def test_a_cancel_before_the_final_commit_wins(
    database_url: str, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(database_url)
    cluster.serve()
    report = cancel_windows(cluster, cluster.client(), workload=Workload(epochs=12))

    assert report.problems() == []
    assert report.outcomes == {
        "last_epoch": ("cancelled", False),
        "last_epoch:keep": ("cancelled", True),
        "before_final_commit": ("cancelled", False),
        "before_final_commit:keep": ("cancelled", True),
        "before_release:keep": ("cancelled", True),
        "before_time_limit": ("cancelled", False),
        "before_time_limit:keep": ("cancelled", True),
    }
