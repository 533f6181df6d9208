"""The events of GET /v1/jobs/{id}/events (Server-Sent Events), as named schemas.

An event is text: ``id:``, ``event:`` and ``data:`` lines. Its data is JSON of a named
schema (``contentSchema``): HistoryEntry for ``epoch`` events, JobFindings for
``findings``, JobEnd for ``end``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.jobs import Finding

REF = "#/components/schemas/"


def json_of(name: str) -> Any:
    """A ``data`` field: a string holding JSON of the component ``name``."""
    return Field(
        description=f"JSON: {name}",
        json_schema_extra={
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": REF + name},
        },
    )


class EpochEvent(BaseModel):
    """``event: epoch``: one per epoch, the history replayed first."""

    event: Literal["epoch"]
    id: str = Field(description="The epoch; send it as Last-Event-ID to resume after it")
    data: str = json_of("HistoryEntry")


class JobFindings(BaseModel):
    """Data of a ``findings`` event: the job's whole current list."""

    findings: list[Finding]


class FindingsEvent(BaseModel):
    """``event: findings``: sent after the epochs read with it, whenever the list changes."""

    event: Literal["findings"]
    id: str | None = Field(default=None, description="Clients repeat the last epoch's id")
    data: str = json_of("JobFindings")


class EndEvent(BaseModel):
    """``event: end``: the job's final state; the stream then closes."""

    event: Literal["end"]
    id: str | None = Field(default=None, description="Clients repeat the last epoch's id")
    data: str = json_of("JobEnd")


# The event stream's schema. Generators read `schema` as the whole body (text: a str in
# the client); tools that follow OpenAPI 3.1's reading of an event stream (Schemathesis)
# validate each parsed event against it, contentSchema included. Both readings hold.
EVENT_STREAM_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "string",
            "description": "The stream as text: per epoch `id: <epoch>`, `event: epoch`, "
            "`data: <HistoryEntry>`; `event: findings`, `data: <JobFindings>` when they "
            "change; then `event: end`, `data: <JobEnd>`; `: keep-alive` comments between",
        },
        {"$ref": REF + "EpochEvent"},
        {"$ref": REF + "FindingsEvent"},
        {"$ref": REF + "EndEvent"},
    ]
}
