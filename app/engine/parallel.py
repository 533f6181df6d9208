"""Elementwise work over big vectors, spread over a few threads.

NumPy ufuncs release the GIL while they loop over more than a few hundred elements, so
independent chunks of an optimizer update run truly in parallel on separate threads. The
pieces never overlap and each element sees the same operations in the same order, so the
result is bit-identical whatever the number of threads. Small jobs stay on the calling
thread: handing work to the pool costs tens of microseconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


def _thread_budget() -> int:
    """Cores this process may use: its CPU affinity, capped by the BLAS thread variables
    (``backprop serve`` sets them to cores / workers so that workers do not oversubscribe)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    budget = cores or 1
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            budget = min(budget, int(value))
    return max(1, min(4, budget))


WORKERS = _thread_budget()
MIN_PIECES = 8  # fewer pieces than this: not worth a thread hand-off

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS - 1, thread_name_prefix="engine-lane")
    return _pool


class Lanes(Generic[T]):
    """``pieces`` cut into contiguous lanes, one per thread (a single lane when few)."""

    def __init__(self, pieces: Sequence[T]) -> None:
        count = min(WORKERS, len(pieces)) if len(pieces) >= MIN_PIECES else 1
        bounds = [round(i * len(pieces) / count) for i in range(count + 1)]
        self.lanes = [list(pieces[bounds[i] : bounds[i + 1]]) for i in range(count)]

    def run(self, work: Callable[[int, list[T]], None]) -> None:
        """work(lane index, lane pieces) for every lane; the calling thread takes lane 0."""
        if len(self.lanes) == 1:
            work(0, self.lanes[0])
            return
        futures = [
            _executor().submit(work, i, lane) for i, lane in enumerate(self.lanes[1:], start=1)
        ]
        work(0, self.lanes[0])
        for future in futures:
            future.result()
