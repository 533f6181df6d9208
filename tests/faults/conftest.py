"""Fixtures of the fault suite: a :class:`Cluster` of real processes per test.

Every process a test starts is SIGKILLed at teardown, whatever happened; the tail of
each process's log is printed then, so a failing test shows what the workers said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Cluster, ClusterConfig

MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    """``make_cluster(database_url, **config) -> Cluster`` (migrated; killed at teardown)."""
    made: list[Cluster] = []

    def build(database_url: str, **config: object) -> Cluster:
        cluster = Cluster(
            ClusterConfig(database_url=database_url, **config),  # type: ignore[arg-type]
            tmp_path / f"cluster-{len(made)}",
        )
        made.append(cluster)
        cluster.migrate()
        return cluster

    yield build
    for cluster in made:
        for proc in cluster.procs:
            print(f"----- {proc.name} ({' '.join(proc.args[-2:])}) -----\n{proc.tail(25)}")
        cluster.close()
