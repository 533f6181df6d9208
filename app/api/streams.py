"""Open event streams per owner, capped (``BACKPROP_MAX_STREAMS_PER_OWNER``, per API
process): each open stream polls the database, so one owner cannot hold hundreds."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator

from app.services.errors import ServiceError

RETRY_AFTER_SECONDS = 5


class TooManyStreams(ServiceError):
    status_code = 429
    error_type = "too_many_streams"

    def __init__(self, open_streams: int, limit: int) -> None:
        super().__init__(
            f"{open_streams} event streams are open, the limit is "
            f"BACKPROP_MAX_STREAMS_PER_OWNER={limit}; close one or retry later",
            ("header", "authorization"),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


class StreamSlot:
    """One open stream's place; :meth:`release` is idempotent (called by the stream's end
    and again by the response's background task, whichever comes first)."""

    def __init__(self, limiter: StreamLimiter, owner_id: int) -> None:
        self._limiter = limiter
        self._owner_id = owner_id
        self._held = True

    def release(self) -> None:
        with self._limiter.lock:
            if self._held:
                self._held = False
                self._limiter.open[self._owner_id] -= 1


class StreamLimiter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.open: Counter[int] = Counter()

    def acquire(self, owner_id: int) -> StreamSlot:
        """A slot for one more of ``owner_id``'s streams; 429 when all are taken."""
        with self.lock:
            if self.open[owner_id] >= self.limit:
                raise TooManyStreams(self.open[owner_id], self.limit)
            self.open[owner_id] += 1
        return StreamSlot(self, owner_id)


MAX_EVENT_ID = 2**31 - 1  # PostgreSQL's integer


def resume_after(last_event_id: str | None) -> int:
    """The event number a reconnecting client last received (its ``Last-Event-ID``), or 0
    for a new stream (or an id that is no number of ours). ASCII digits only:
    str.isdigit() is also true of '²³', which int() refuses."""
    if last_event_id is not None and last_event_id.isascii() and last_event_id.isdigit():
        # Past any event a stream numbers (an epoch, a trial: an int column), but within
        # what a query may compare with: 2**63 and up fail on SQLite, 2**31 on PostgreSQL.
        return min(int(last_event_id), MAX_EVENT_ID)
    return 0


async def holding(slot: StreamSlot, stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """``stream``, releasing ``slot`` when it ends, fails or is cancelled (the client left)."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        slot.release()
