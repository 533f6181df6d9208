"""Single-flight: concurrent requests that miss the same cache entry share one refresh.

When a cached entry (a key lookup, a model's freshness check) expires under load, every
request in flight misses it at once; without this each would run its own database read
in the threadpool. Here the first miss starts the read in a worker thread and the
others await the same result, so one read answers them all. Waiting requests hold no
thread. A caller that goes away (client disconnect) does not cancel the read for the
others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one call of a blocking function per key at a time, per event loop."""

    def __init__(self) -> None:
        self._calls: dict[tuple[asyncio.AbstractEventLoop, K], asyncio.Future[V]] = {}

    async def run(self, key: K, call: Callable[[], V]) -> V:
        """``call()`` in a worker thread, or the result of the one already running for key.

        Every caller that joined gets the call's result, or its exception.
        """
        loop = asyncio.get_running_loop()
        slot = (loop, key)
        shared = self._calls.get(slot)
        if shared is None:
            shared = asyncio.ensure_future(run_in_threadpool(call))
            self._calls[slot] = shared

            def forget(done: asyncio.Future[V]) -> None:
                if self._calls.get(slot) is done:
                    del self._calls[slot]
                if not done.cancelled():
                    done.exception()  # retrieved: no "never retrieved" log if all left

            shared.add_done_callback(forget)
        return await asyncio.shield(shared)

    def in_flight(self) -> int:
        """How many calls are running now (all loops)."""
        return len(self._calls)
