"""Retrying a worker's database write while the database is away (a restart, a failover).

A worker that cannot reach the database still holds its job until the lease expires:
nobody else may take the job before then. So the write that ends a job (or releases
it) is retried, with backoff, until that moment; only then is the job left to the lease
(another worker resumes it from its last checkpoint). Only :data:`UNAVAILABLE` errors
are retried: any other error is a bug and propagates at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from app.storage.database import UNAVAILABLE, brief

log = logging.getLogger("backprop.worker")

T = TypeVar("T")

FIRST_DELAY_SECONDS = 0.2
MAX_DELAY_SECONDS = 2.0


def until_deadline(
    call: Callable[[], T],
    *,
    deadline: Callable[[], float],
    what: str,
) -> T:
    """``call()``, retried while it raises :data:`UNAVAILABLE` and ``time.monotonic()``
    is before ``deadline()`` (asked again after each failure: the lease pulse may have
    renewed the lease meanwhile), waiting 0.2 s doubling to 2 s. The last error
    propagates."""
    delay = FIRST_DELAY_SECONDS
    attempt = 1
    while True:
        try:
            return call()
        except UNAVAILABLE as exc:
            left = deadline() - time.monotonic()
            if left <= 0:
                raise
            log.warning(
                "%s: database unavailable (try %d, retrying for %.0f s more): %s",
                what,
                attempt,
                left,
                brief(exc),
            )
            time.sleep(min(delay, left))
            delay = min(delay * 2, MAX_DELAY_SECONDS)
            attempt += 1
