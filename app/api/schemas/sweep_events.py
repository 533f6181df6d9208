"""The events of GET /v1/sweeps/{id}/events (Server-Sent Events), as named schemas:
TrialRead for ``trial`` events, SweepEnd for ``end``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.events import REF, json_of


class TrialEvent(BaseModel):
    """``event: trial``: a trial ended (under halving: ended a rung)."""

    event: Literal["trial"]
    id: str = Field(
        description="The ending's number among the sweep's; send it as Last-Event-ID to "
        "resume after it"
    )
    data: str = json_of("TrialRead")


class SweepEndEvent(BaseModel):
    """``event: end``: the sweep's final state; the stream then closes."""

    event: Literal["end"]
    id: str | None = Field(default=None, description="Clients repeat the last trial's id")
    data: str = json_of("SweepEnd")


SWEEP_EVENT_STREAM_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "string",
            "description": "The stream as text: per ended trial `id: <n>`, `event: trial`, "
            "`data: <TrialRead>`; then `event: end`, `data: <SweepEnd>`; `: keep-alive` "
            "comments between",
        },
        {"$ref": REF + "TrialEvent"},
        {"$ref": REF + "SweepEndEvent"},
    ]
}
