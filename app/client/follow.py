"""Follow a job to its end through GET /v1/jobs/{id}/events, showing each epoch.

Ctrl-C asks whether to cancel the job: yes sends POST /v1/jobs/{id}/cancel and follows on
until the job has stopped; no (or end of input, or a second Ctrl-C) leaves it running and
stops following. A dropped stream is reopened with ``Last-Event-ID``, so no epoch shows
twice. Exit status: 0 succeeded, 1 failed or cancelled elsewhere, 130 after a Ctrl-C.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.prompt import Confirm

from app.client.http import Api, ApiError, Unreachable
from app.client.output import note
from app.client.progress import LiveBar, LogLines, epoch_display
from app.client.sse import events

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
RECONNECTS = 5  # in a row without an event, before giving up
RECONNECT_SECONDS = 1.0


class _Stream:
    """The job's event stream, reopened where it broke off."""

    def __init__(self, api: Api, job_id: str, display: LiveBar | LogLines) -> None:
        self.api, self.display = api, display
        self.path = f"/v1/jobs/{quote(job_id, safe='')}/events"
        self.last_epoch = 0

    def until_end(self) -> dict[str, Any]:
        """Show each epoch; the ``end`` event's data (status, model_id, error)."""
        failures = 0
        while True:
            seen = self.last_epoch
            try:
                end = self._once()
            except Unreachable:
                if failures >= RECONNECTS:
                    raise
                end = None
            if end is not None:
                return end
            failures = 0 if self.last_epoch > seen else failures + 1
            if failures > RECONNECTS:
                raise Unreachable(f"the event stream {self.api.url}{self.path} keeps closing")
            time.sleep(RECONNECT_SECONDS)

    def _once(self) -> dict[str, Any] | None:
        headers = {"Accept": "text/event-stream"}
        if self.last_epoch:
            headers["Last-Event-ID"] = str(self.last_epoch)
        with self.api.stream(self.path, headers=headers) as response:
            for event in events(response.iter_lines()):
                data = json.loads(event.data)
                if event.event == "end":
                    return dict(data)
                if event.event == "epoch" and int(data["epoch"]) > self.last_epoch:
                    self.last_epoch = int(data["epoch"])
                    self.display.epoch(data)
        return None  # closed before the end: reopen


def follow(api: Api, job: Mapping[str, Any], console: Console) -> int:
    """Show ``job``'s epochs live until it ends; print its model id (if any) on stdout."""
    job_id = job["id"]
    display = epoch_display(console, epochs=int(job["epochs"]))
    stream = _Stream(api, job_id, display)
    interrupted = False
    display.start()
    try:
        while True:
            try:
                end = stream.until_end()
                break
            except KeyboardInterrupt:
                display.stop()
                if interrupted or not _confirm_cancel(console, job_id):
                    note(f"stopped following; follow again with `backprop jobs follow {job_id}`")
                    return EXIT_INTERRUPTED
                interrupted = True
                try:
                    api.post(f"/v1/jobs/{quote(job_id, safe='')}/cancel")
                    note(f"cancelling job {job_id} (it stops within a batch)")
                except ApiError as exc:  # 409: it has just ended; the stream tells how
                    if exc.status_code != 409:
                        raise
                    note(str(exc))
                display.start()
    finally:
        display.stop()
    return _report(job_id, end, stream.last_epoch, int(job["epochs"]), interrupted)


def _confirm_cancel(console: Console, job_id: str) -> bool:
    try:
        return Confirm.ask(f"\nCancel job {job_id}?", console=console, default=False)
    except (EOFError, KeyboardInterrupt):
        return False


def _report(job_id: str, end: Mapping[str, Any], epoch: int, epochs: int, interrupted: bool) -> int:
    status, model_id = end["status"], end.get("model_id")
    if status == "succeeded":
        stopped = f" (stopped early at {epoch}/{epochs})" if epoch < epochs else ""
        note(f"job {job_id} succeeded after {epoch} epochs{stopped}: model {model_id}")
        print(model_id)
        return 0
    if status == "failed":
        note(f"job {job_id} failed: {end.get('error') or 'no reason given'}")
        return EXIT_FAILED
    kept = f"; its best-so-far model: {model_id}" if model_id else ""
    note(f"job {job_id} {status} after {epoch} epochs{kept}")
    return EXIT_INTERRUPTED if interrupted else EXIT_FAILED
