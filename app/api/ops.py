"""Operations endpoints (no key): liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from app.api.deps import Ctx
from app.api.prometheus import Gauge
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
def metrics(ctx: Ctx) -> PlainTextResponse:
    """Requests and latencies (this process); jobs, queue depth, workers (database)."""
    by_status = ops.jobs_by_status(ctx.database)
    cache = ctx.model_cache
    gauges: dict[str, Gauge] = {
        "backprop_jobs": (
            "Jobs by status.",
            {(("status", s),): float(n) for s, n in by_status.items()},
        ),
        "backprop_queue_depth": ("Jobs waiting for a worker.", {(): float(by_status["queued"])}),
        "backprop_workers": (
            "Workers with a heartbeat in the last 30 s.",
            {(): float(ops.live_workers(ctx.database))},
        ),
        "backprop_model_cache_size": ("Models loaded in this process.", {(): float(len(cache))}),
        "backprop_model_cache_hits": (
            "Predict lookups served from the cache (counter-like).",
            {(): float(cache.hits)},
        ),
        "backprop_model_cache_misses": (
            "Predict lookups that missed the cache.",
            {(): float(cache.misses)},
        ),
    }
    return PlainTextResponse(
        ctx.metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
