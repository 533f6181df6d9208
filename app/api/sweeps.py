"""/v1/sweeps: hyperparameter searches whose trials are jobs in the one queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Response, status
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from app.api.deps import CallerDep, Ctx, PageDep, errors, json_errors
from app.api.schemas.common import Page, openapi_examples
from app.api.schemas.sweep_events import SWEEP_EVENT_STREAM_SCHEMA
from app.api.schemas.sweeps import SweepCreate, SweepEnd, SweepRead, TrialRead
from app.api.streams import holding, resume_after
from app.api.sweep_bodies import sweep_spec
from app.services import sweeps as service
from app.services.sweep_events import sweep_events

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"], responses=errors(401))


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepRead,
    responses=errors(404, 413, 422, 429),
)
def create_sweep(
    body: Annotated[SweepCreate, Body(openapi_examples=openapi_examples(SweepCreate))],
    ctx: Ctx,
    caller: CallerDep,
) -> SweepRead:
    """Queue a sweep: one job per trial. Every path and value is checked now (422 naming
    the grid path); the sweep counts as one active job (429)."""
    spec, trials = sweep_spec(body)
    return SweepRead.of(
        service.create_sweep(
            ctx.database, ctx.settings, owner_id=caller.owner_id, spec=spec, trials=trials
        )
    )


@router.get("", response_model=Page[SweepRead], responses=errors(422))
def list_sweeps(ctx: Ctx, caller: CallerDep, page: PageDep) -> Page[SweepRead]:
    """Newest first, each with its trials."""
    rows, total = service.list_sweeps(
        ctx.database, owner_id=caller.owner_id, limit=page.limit, offset=page.offset
    )
    return page.result([SweepRead.of(row) for row in rows], total)


@router.get("/{sweep_id}", response_model=SweepRead, responses=errors(404, 422))
def get_sweep(sweep_id: str, ctx: Ctx, caller: CallerDep) -> SweepRead:
    """The sweep's status, every trial (params, job, status, score, model) and the best."""
    return SweepRead.of(
        service.get_sweep(ctx.database, owner_id=caller.owner_id, sweep_id=sweep_id)
    )


@router.post(
    "/{sweep_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepRead,
    responses=errors(404, 409, 422),
)
def cancel_sweep(sweep_id: str, ctx: Ctx, caller: CallerDep) -> SweepRead:
    """Queued trials are cancelled now, running ones stop within a batch; finished trials
    keep their models, and a halving trial promoted to a rung it did not finish keeps the
    model of the rung it did."""
    return SweepRead.of(
        service.cancel_sweep(ctx.database, owner_id=caller.owner_id, sweep_id=sweep_id)
    )


@router.get(
    "/{sweep_id}/events",
    response_class=Response,
    responses={
        200: {
            "description": "`event: trial` (data: TrialRead, `id:` the ending's number) "
            "each time a trial ends (under halving, each rung), those already ended first "
            "(after Last-Event-ID's number when sent); then `event: end` (data: SweepEnd); "
            "then the stream closes",
            "content": {"text/event-stream": {"schema": SWEEP_EVENT_STREAM_SCHEMA}},
        },
        **json_errors(401, 404, 422, 429),
    },
)
def stream_sweep_events(
    sweep_id: str,
    ctx: Ctx,
    caller: CallerDep,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventStream:
    """Server-Sent Events: one per finished trial, then the end. A reconnecting client
    sending Last-Event-ID gets only the trial endings after that event."""
    service.require_sweep(ctx.database, owner_id=caller.owner_id, sweep_id=sweep_id)
    after = resume_after(last_event_id)
    slot = ctx.streams.acquire(caller.owner_id)  # 429 past BACKPROP_MAX_STREAMS_PER_OWNER
    stream = sweep_events(
        ctx.database,
        owner_id=caller.owner_id,
        sweep_id=sweep_id,
        trial_data=lambda trial: TrialRead.of(trial).model_dump(mode="json"),
        end_data=lambda state: SweepEnd(
            status=SweepRead.of(state).status, best=SweepRead.of(state).best
        ).model_dump(mode="json"),
        after_event=after,
    )
    return EventStream(
        holding(slot, stream),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        background=BackgroundTask(slot.release),
    )
