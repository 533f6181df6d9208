"""How often a worker found a blob in its local cache of the ``s3`` store.

Every hit and miss of :class:`~app.storage.blob_cache.BlobCache` counts in two
Prometheus counters. Under ``backprop serve`` the workers share the API's metrics folder
(``PROMETHEUS_MULTIPROC_DIR``), so the API's ``/metrics`` sums them over every worker,
dead ones included (counters never go back). Each job's start also logs its own share:
``job <id>: blob cache: 2 hit(s), 0 miss(es)``. The file store has no cache: nothing is
counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import Counter

from app.storage.blob_cache import BlobCache
from app.storage.blobs import BlobStore

log = logging.getLogger("backprop.worker")

HITS = Counter(
    "backprop_blob_cache_hits",
    "Blob reads workers served from their local cache of the s3 store.",
)
MISSES = Counter(
    "backprop_blob_cache_misses",
    "Blob reads that downloaded the blob from the s3 store (verified, then cached).",
)


@dataclass(frozen=True)
class CacheCounts:
    hits: int
    misses: int


def cache_of(store: BlobStore) -> BlobCache | None:
    """The store's local cache (the ``s3`` store's), None for a store without one."""
    cache = getattr(store, "cache", None)
    return cache if isinstance(cache, BlobCache) else None


def counts(store: BlobStore) -> CacheCounts | None:
    """The cache's hits and misses so far in this process (None: no cache)."""
    cache = cache_of(store)
    return None if cache is None else CacheCounts(cache.hits, cache.misses)


def record(job_id: str, before: CacheCounts | None, after: CacheCounts | None) -> None:
    """Add what happened between ``before`` and ``after`` to the counters, and log it."""
    if before is None or after is None:
        return
    hits, misses = after.hits - before.hits, after.misses - before.misses
    HITS.inc(hits)
    MISSES.inc(misses)
    log.info("job %s: blob cache: %d hit(s), %d miss(es)", job_id, hits, misses)
