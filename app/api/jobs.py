"""/v1/jobs: submit training, follow it (JSON or Server-Sent Events), cancel it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response, status
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from app.api.deps import CallerDep, Ctx, PageDep, errors, json_errors
from app.api.schemas.common import NO_NUL, Page, openapi_examples
from app.api.schemas.events import EVENT_STREAM_SCHEMA
from app.api.schemas.jobs import JobCancel, JobCreate, JobRead, JobSummary, JobTarget
from app.api.streams import holding, resume_after
from app.services import jobs as service
from app.services.job_events import job_events
from app.storage.tables import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=errors(401))


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=errors(404, 413, 422, 429),
)
def submit_job(
    body: Annotated[JobCreate, Body(openapi_examples=openapi_examples(JobCreate))],
    ctx: Ctx,
    caller: CallerDep,
) -> JobRead:
    """Queue a training job. Ids, shapes, labels and limits are checked now (404/422/429)."""
    options = body.model_dump(mode="json", exclude=set(JobTarget.model_fields))
    job = service.submit_job(
        ctx.database,
        ctx.settings,
        owner_id=caller.owner_id,
        network_id=body.network_id,
        dataset_id=body.dataset_id,
        init_model_id=body.init_model_id,
        options=options,
    )
    return JobRead.from_row(job, None)


@router.get("", response_model=Page[JobSummary], responses=errors(422))
def list_jobs(
    ctx: Ctx,
    caller: CallerDep,
    page: PageDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
    network_id: Annotated[
        str | None,
        Query(max_length=64, pattern=NO_NUL, description="Only jobs training this network"),
    ] = None,
    dataset_id: Annotated[
        str | None,
        Query(max_length=64, pattern=NO_NUL, description="Only jobs training on this dataset"),
    ] = None,
    sweep_id: Annotated[
        str | None,
        Query(max_length=64, pattern=NO_NUL, description="Only the trials of this sweep"),
    ] = None,
) -> Page[JobSummary]:
    """Newest first, without each job's history (GET /v1/jobs/{id} has it)."""
    rows, total = service.list_jobs(
        ctx.database,
        owner_id=caller.owner_id,
        status=status,
        network_id=network_id,
        dataset_id=dataset_id,
        sweep_id=sweep_id,
        limit=page.limit,
        offset=page.offset,
    )
    return page.result([JobSummary.from_row(job, model_id) for job, model_id in rows], total)


@router.get("/{job_id}", response_model=JobRead, responses=errors(404, 422))
def get_job(job_id: str, ctx: Ctx, caller: CallerDep) -> JobRead:
    return JobRead.from_row(*service.get_job(ctx.database, owner_id=caller.owner_id, job_id=job_id))


@router.get(
    "/{job_id}/events",
    # Not EventStream: FastAPI would merge its default `type: string` into the schema below
    # (which must also admit each event as an object, for per-event validators).
    response_class=Response,
    responses={
        200: {
            "description": "`event: epoch` (data: HistoryEntry, the epoch's metrics and "
            "per-layer statistics) per epoch, history first; `event: findings` (data: "
            "JobFindings) whenever they change; then `event: end` (data: JobEnd); then the "
            "stream closes",
            "content": {"text/event-stream": {"schema": EVENT_STREAM_SCHEMA}},
        },
        **json_errors(401, 404, 422, 429),
    },
)
def stream_job_events(
    job_id: str,
    ctx: Ctx,
    caller: CallerDep,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventStream:
    """Server-Sent Events: one per epoch, then the end state."""
    service.job_progress(ctx.database, owner_id=caller.owner_id, job_id=job_id)  # 404 first
    after = resume_after(last_event_id)
    slot = ctx.streams.acquire(caller.owner_id)  # 429 past BACKPROP_MAX_STREAMS_PER_OWNER
    stream = job_events(ctx.database, owner_id=caller.owner_id, job_id=job_id, after_epoch=after)
    return EventStream(
        holding(slot, stream),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        background=BackgroundTask(slot.release),
    )


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=errors(404, 409, 413, 422),
)
def cancel_job(
    job_id: str,
    ctx: Ctx,
    caller: CallerDep,
    body: Annotated[JobCancel | None, Body()] = None,
) -> JobRead:
    """Queued: cancelled now. Running: stops within a batch (keep_model keeps its best);
    a request recorded before the final commit wins, even during the last epoch."""
    keep_model = body.keep_model if body is not None else False
    return JobRead.from_row(
        *service.cancel_job(
            ctx.database, owner_id=caller.owner_id, job_id=job_id, keep_model=keep_model
        )
    )
