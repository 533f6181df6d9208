"""Operations endpoints (no key): liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from app.api.deps import Ctx
from app.api.prometheus import CONTENT_TYPE, database_gauges
from app.services import ops

router = APIRouter(tags=["ops"])
# These take no key: said explicitly, so that clients and tools do not send one.
OPEN: dict[str, Any] = {"security": []}


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    reasons: list[str]


@router.get("/healthz", response_model=Health, openapi_extra=OPEN)
async def healthz() -> Health:
    """The process is up (nothing else is checked)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    openapi_extra=OPEN,
    responses={503: {"model": Ready, "description": "Not ready; reasons say why"}},
)
def readyz(ctx: Ctx) -> JSONResponse:
    """Ready: database reachable, migrations current, a worker heartbeat within 30 s."""
    result = ops.readiness(ctx.database)
    body = Ready(status="ready" if result.ready else "not_ready", reasons=result.reasons)
    return JSONResponse(body.model_dump(), status_code=200 if result.ready else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    openapi_extra=OPEN,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        }
    },
)
def metrics(ctx: Ctx) -> Response:
    """Requests, latencies and the model cache (every API process); jobs, queue depth,
    workers (database)."""
    gauges = database_gauges(ops.jobs_by_status(ctx.database), ops.live_workers(ctx.database))
    return Response(ctx.metrics.render(gauges), media_type=CONTENT_TYPE)
