"""Server-Sent Events from the lines of a ``text/event-stream`` body.

The format (WHATWG HTML, "Server-sent events"): ``field: value`` lines, an event ending at
a blank line; ``data`` lines join with newlines; lines starting with ``:`` are comments
(the server's keep-alives). Only what Backprop's job stream sends is needed: ``id``,
``event`` and ``data``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    event: str  # "message" when the stream names none
    data: str
    id: str | None


def events(lines: Iterable[str]) -> Iterator[Event]:
    """Each complete event of ``lines`` (line breaks already removed); a trailing event
    without its blank line is dropped, as the format says."""
    name, event_id = "", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(name or "message", "\n".join(data), event_id)
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id":
            event_id = value
