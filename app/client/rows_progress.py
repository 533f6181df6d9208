"""Following a prediction run or a worker-side evaluation on the terminal: poll its
resource until it ends, showing ``rows ━━━━  250000/1000000  812,345 rows/s`` (a live rich
bar on a terminal, a plain line every :data:`LOG_SECONDS` anywhere else)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from app.client.http import Api
from app.client.output import note

POLL_SECONDS = 0.5
LOG_SECONDS = 10.0
ACTIVE = ("queued", "running")


def speed_text(body: Mapping[str, Any]) -> str:
    rate = body.get("rows_per_second")
    return f"{rate:,.0f} rows/s" if rate else body["status"]


def follow_rows(api: Api, path: str, first: Mapping[str, Any]) -> dict[str, Any]:
    """GET ``path`` until the resource (``first``: its answer so far) is no longer queued
    or running; its last answer."""
    body = dict(first)
    console = Console(stderr=True)
    total = int(body.get("rows_total") or 0)
    if console.is_interactive:
        progress = Progress(
            TextColumn("rows"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            console=console,
        )
        task = progress.add_task("rows", total=total or None, speed=body["status"])
        with progress:
            while body["status"] in ACTIVE:
                time.sleep(POLL_SECONDS)
                body = api.get(path)
                progress.update(task, completed=body.get("rows_done") or 0, speed=speed_text(body))
        return body
    printed = time.monotonic()
    while body["status"] in ACTIVE:
        time.sleep(POLL_SECONDS)
        body = api.get(path)
        if time.monotonic() - printed >= LOG_SECONDS:
            console.print(f"rows {body.get('rows_done') or 0}/{total}  {speed_text(body)}")
            printed = time.monotonic()
    return body


def follow_or_cancel(
    api: Api, path: str, first: Mapping[str, Any], what: str, queued: str
) -> dict[str, Any] | None:
    """Note ``queued`` (the run was created), then :func:`follow_rows`; Ctrl+C from the note
    on cancels the run (POST ``path``/cancel) and answers None. ``what`` names it in the
    note ("prediction run", "evaluation")."""
    try:
        note(queued)  # inside: a Ctrl+C as the note prints still cancels the run
        return follow_rows(api, path, first)
    except KeyboardInterrupt:
        api.post(f"{path}/cancel")
        note(f"{what} {first['id']} cancelled")
        return None
