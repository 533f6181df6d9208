"""Server-Sent Events of a sweep: one ``trial`` event each time a trial ends (under
halving, each rung it ends), then ``end`` with the sweep's status and best trial.

The sweep's trials are polled every :data:`POLL_SECONDS`; a stream opened late first
replays the trials that have already ended. Each trial event has ``id: <n>``, the number
of that ending among the sweep's (``jobs.sweep_event``, given in the ending's
transaction under the sweep's row lock, so in commit order: app/jobs/sweep_advance.py).
A client reconnecting with ``Last-Event-ID: n`` gets only the endings numbered after n,
like the job stream's epochs. Events show each trial as it is now: a halving trial
promoted since its rung ended shows again when it ends its next rung.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.jobs.sweep_advance import SWEEP_TERMINAL
from app.services.job_events import KEEPALIVE_SECONDS, sse
from app.services.sweep_view import SweepView, TrialView
from app.services.sweeps import get_sweep
from app.storage.database import Database

POLL_SECONDS = 0.5
Render = Callable[[TrialView], dict[str, Any]]


async def sweep_events(
    db: Database,
    *,
    owner_id: int,
    sweep_id: str,
    trial_data: Render,
    end_data: Callable[[SweepView], dict[str, Any]],
    after_event: int = 0,
    poll_seconds: float = POLL_SECONDS,
) -> AsyncIterator[str]:
    """``trial`` events as trials end (those numbered after ``after_event``, in number
    order), then one ``end`` event; then the stream ends. ``trial_data`` and ``end_data``
    give each event's JSON (the API's schemas)."""
    last_event = after_event  # of the last event sent
    last_sent = time.monotonic()
    while True:
        state = await asyncio.to_thread(get_sweep, db, owner_id=owner_id, sweep_id=sweep_id)
        ended = [
            trial
            for trial in state.trials
            if trial.status in SWEEP_TERMINAL and (trial.event or 0) > last_event
        ]
        for trial in sorted(ended, key=lambda t: t.event or 0):
            last_event = trial.event or 0
            last_sent = time.monotonic()
            yield sse("trial", trial_data(trial), str(last_event))
        if state.finished:
            yield sse("end", end_data(state))
            return
        if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_seconds)
