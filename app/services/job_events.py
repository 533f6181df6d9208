"""Server-Sent Events of a job: one ``epoch`` event per history entry (its metrics and
per-layer statistics), a ``findings`` event whenever the findings change, then ``end``.

The job row is polled (the worker writes history throttled, several epochs at a time).
Each poll reads only the job's status and epoch count; the history rows after the last
event sent (and the findings) are read when the epoch column changed and is past that
event (or the job finished), so a stream of an idle or slow job costs two integer
columns per poll, and a live one only its new epochs' rows (``job_epochs`` is
append-only). Every entry not yet sent is emitted, so a stream opened late replays the
history first. Each epoch event has ``id: <epoch>``; a client reconnecting with
``Last-Event-ID`` gets only the epochs after it. The ``findings`` event carries the whole
current list (``{"findings": [...]}``), after the epochs read with it, whenever it
differs from what this stream last sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from app.services.jobs import TERMINAL, job_epoch, job_progress
from app.storage.database import Database

POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    """One event in the text/event-stream format."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def job_events(
    db: Database,
    *,
    owner_id: int,
    job_id: str,
    after_epoch: int = 0,
    poll_seconds: float = POLL_SECONDS,
) -> AsyncIterator[str]:
    """Epoch events (history replayed first), then one ``end`` event; then the stream ends."""
    last_epoch = after_epoch  # of the last event sent
    read_at: int | None = None  # the job's epoch column when its history was last read
    last_sent = time.monotonic()
    sent_findings: list[dict[str, Any]] = []
    while True:
        status, epoch = await asyncio.to_thread(job_epoch, db, owner_id=owner_id, job_id=job_id)
        if (epoch != read_at and epoch > last_epoch) or status in TERMINAL:
            read_at = epoch
            progress = await asyncio.to_thread(
                job_progress, db, owner_id=owner_id, job_id=job_id, after=last_epoch
            )
            for entry in progress.history:
                entry_epoch = int(entry.get("epoch", 0))
                if entry_epoch > last_epoch:
                    last_epoch = entry_epoch
                    last_sent = time.monotonic()
                    yield sse("epoch", entry, str(entry_epoch))
            if progress.findings != sent_findings:
                sent_findings = progress.findings
                last_sent = time.monotonic()
                yield sse("findings", {"findings": sent_findings})
            if progress.finished:
                end = {"status": progress.status, "model_id": progress.model_id}
                yield sse("end", {**end, "error": progress.error})
                return
        if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_seconds)
