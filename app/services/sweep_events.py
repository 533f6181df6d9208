"""Server-Sent Events of a sweep: one ``trial`` event each time a trial ends (under
halving, each rung it ends), then ``end`` with the sweep's status and best trial.

The sweep's trials are polled every :data:`POLL_SECONDS`; a stream opened late first
replays the trials that have already ended. Each trial event has ``id: <n>``, the count
of trial events so far.
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
    poll_seconds: float = POLL_SECONDS,
) -> AsyncIterator[str]:
    """``trial`` events as trials end, then one ``end`` event; then the stream ends.
    ``trial_data`` and ``end_data`` give each event's JSON (the API's schemas)."""
    sent: set[tuple[int, int, str]] = set()
    last_sent = time.monotonic()
    while True:
        state = await asyncio.to_thread(get_sweep, db, owner_id=owner_id, sweep_id=sweep_id)
        for trial in state.trials:
            key = (trial.index, trial.epochs_run, trial.status)
            if trial.status in SWEEP_TERMINAL and key not in sent:
                sent.add(key)
                last_sent = time.monotonic()
                yield sse("trial", trial_data(trial), str(len(sent)))
        if state.finished:
            yield sse("end", end_data(state))
            return
        if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_seconds)
