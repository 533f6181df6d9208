"""The workers' blob cache figures: counted per job, logged, and summed in ``/metrics``.

With the ``s3`` store a worker reads each blob through its local cache: the first read of
a blob downloads it (a miss), later ones map the cached copy (hits). The file store has no
cache and counts nothing. Under ``backprop serve`` the counts of every worker reach the
API's ``/metrics`` as ``backprop_blob_cache_hits_total`` / ``..._misses_total``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from app.jobs import cache_metrics
from app.storage.blobs import BlobStore
from tests.faults.harness import ClusterConfig, cluster
from tests.s3server import S3Server


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_cache_counts_reach_the_counters_and_the_log(
    blob_store: BlobStore, caplog: pytest.LogCaptureFixture
) -> None:
    ref = blob_store.put_bytes(b"x" * 1000)
    before = cache_metrics.counts(blob_store)
    hits, misses = (
        sample("backprop_blob_cache_hits_total"),
        sample("backprop_blob_cache_misses_total"),
    )
    for _ in range(3):
        blob_store.local_path(ref.sha256)
    after = cache_metrics.counts(blob_store)
    with caplog.at_level(logging.INFO, logger="backprop.worker"):
        cache_metrics.record("job-1", before, after)

    if cache_metrics.cache_of(blob_store) is None:  # the file store: nothing to count
        assert before is after is None
        assert sample("backprop_blob_cache_hits_total") == hits
        assert caplog.messages == []
        return
    assert before is not None and after is not None
    assert (after.hits - before.hits, after.misses - before.misses) == (2, 1)
    assert sample("backprop_blob_cache_hits_total") == hits + 2
    assert sample("backprop_blob_cache_misses_total") == misses + 1
    assert caplog.messages == ["job job-1: blob cache: 2 hit(s), 1 miss(es)"]


def scraped(base_url: str) -> dict[str, float]:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("backprop_blob_cache_")
    }


@pytest.mark.slow
@pytest.mark.s3
def test_serve_sums_its_workers_cache_counts_in_metrics(
    sqlite_url: str, s3: S3Server, tmp_path: Path
) -> None:
    config = ClusterConfig(database_url=sqlite_url, blob_url=s3.new_url(), extra_env=s3.env())
    with cluster(config, tmp_path / "cluster") as running:
        server = running.serve(workers=1)
        client = running.client(server)
        rng = np.random.default_rng(0)
        datasets = []
        for _ in range(2):
            x = rng.normal(size=(64, 2)).round(3).tolist()
            datasets.append(running.client().create_dataset(x, [int(a > 0) for a, _ in x]))
        first, second = datasets
        network = client.create_network()
        # x and y of the first dataset: downloaded by the first job; the second job on it
        # reads no blob at all (the worker keeps its last dataset's arrays, data_memo);
        # another dataset's arrays replace them (2 more misses), and the first dataset's
        # come from the cache again (2 hits).
        for dataset, expected in (
            (first, {"misses": 2.0, "hits": 0.0}),
            (first, {"misses": 2.0, "hits": 0.0}),
            (second, {"misses": 4.0, "hits": 0.0}),
            (first, {"misses": 4.0, "hits": 2.0}),
        ):
            job = client.submit_job(network, dataset, epochs=2, batch_size=16)
            assert client.wait_terminal([job], timeout=120)[job]["status"] == "succeeded"
            assert scraped(server.base_url) == {
                "backprop_blob_cache_hits_total": expected["hits"],
                "backprop_blob_cache_misses_total": expected["misses"],
            }
        assert "blob cache: 2 hit(s), 0 miss(es)" in running.procs[0].output()
