"""/v1/predictions and /v1/models/{id}/predictions: batch predictions over a stored
dataset, run by a worker, followed, cancelled and downloaded (npy or CSV)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response, status
from fastapi.responses import StreamingResponse

from app.api.deps import CallerDep, Ctx, PageDep, errors, json_errors
from app.api.schemas.common import NO_NUL, Page, openapi_examples
from app.api.schemas.predictions import PredictionCreate, PredictionRead
from app.services import prediction_runs as service
from app.storage.tables import JobStatus

router = APIRouter(tags=["predictions"], responses=errors(401))

_MEDIA_TYPES = {"npy": "application/x-npy", "csv": "text/csv"}


@router.post(
    "/v1/models/{model_id}/predictions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PredictionRead,
    responses=errors(404, 413, 422, 429),
)
def submit_prediction(
    model_id: str,
    body: Annotated[PredictionCreate, Body(openapi_examples=openapi_examples(PredictionCreate))],
    ctx: Ctx,
    caller: CallerDep,
) -> PredictionRead:
    """Queue a prediction run: a worker scores every row of the dataset with the model, in
    chunks (memory bounded whatever the size), surviving worker restarts. It counts
    toward the owner's BACKPROP_MAX_ACTIVE_JOBS, and its outputs (estimated as rows x
    outputs x 4 bytes) toward BACKPROP_MAX_OWNER_BYTES (413). 422 when the dataset's width
    differs from the model's."""
    run = service.submit_prediction(
        ctx.database,
        ctx.settings,
        owner_id=caller.owner_id,
        model_id=model_id,
        dataset_id=body.dataset_id,
    )
    return PredictionRead.from_row(run)


@router.get("/v1/predictions", response_model=Page[PredictionRead], responses=errors(422))
def list_predictions(
    ctx: Ctx,
    caller: CallerDep,
    page: PageDep,
    model_id: Annotated[
        str | None, Query(max_length=64, pattern=NO_NUL, description="Only runs of this model")
    ] = None,
    status: Annotated[JobStatus | None, Query(description="Only runs in this status")] = None,
) -> Page[PredictionRead]:
    """Your prediction runs, newest first."""
    rows, total = service.list_predictions(
        ctx.database,
        owner_id=caller.owner_id,
        model_id=model_id,
        status=status,
        limit=page.limit,
        offset=page.offset,
    )
    return page.result([PredictionRead.from_row(run) for run in rows], total)


@router.get(
    "/v1/predictions/{prediction_id}", response_model=PredictionRead, responses=errors(404, 422)
)
def get_prediction(prediction_id: str, ctx: Ctx, caller: CallerDep) -> PredictionRead:
    """The run's status and progress (rows done, rows/s)."""
    return PredictionRead.from_row(
        service.get_prediction(ctx.database, owner_id=caller.owner_id, prediction_id=prediction_id)
    )


@router.post(
    "/v1/predictions/{prediction_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PredictionRead,
    responses=errors(404, 409, 422),
)
def cancel_prediction(prediction_id: str, ctx: Ctx, caller: CallerDep) -> PredictionRead:
    """Queued: cancelled now. Running: stops at the end of a chunk once its worker
    renews its lease (every BACKPROP_LEASE_SECONDS / 3). 409 once it has ended."""
    return PredictionRead.from_row(
        service.cancel_prediction(
            ctx.database, owner_id=caller.owner_id, prediction_id=prediction_id
        )
    )


@router.delete(
    "/v1/predictions/{prediction_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404, 409, 422),
)
def delete_prediction(prediction_id: str, ctx: Ctx, caller: CallerDep) -> Response:
    """Delete an ended run and its outputs (they stop counting toward
    BACKPROP_MAX_OWNER_BYTES; the blob goes at the next gc). 409 while queued or running."""
    service.delete_prediction(ctx.database, owner_id=caller.owner_id, prediction_id=prediction_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/predictions/{prediction_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string"}},
            },
            "description": "npy: the outputs (rows x outputs, the model's dtype); csv: a "
            "header line, then each row's outputs and, for classifiers, its predicted label",
        },
        **json_errors(404, 409, 422, 503),
    },
)
def download_prediction(
    prediction_id: str,
    ctx: Ctx,
    caller: CallerDep,
    format: Annotated[Literal["npy", "csv"], Query(description="npy or csv")] = "npy",
) -> StreamingResponse:
    """The outputs of a succeeded run, streamed (409 before it succeeded)."""
    download = service.download_csv if format == "csv" else service.download_npy
    filename, chunks = download(
        ctx.database, ctx.blobs, owner_id=caller.owner_id, prediction_id=prediction_id
    )
    return StreamingResponse(
        chunks,
        media_type=_MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
