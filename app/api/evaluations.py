"""/v1/models/{id}/evaluate, /v1/models/{id}/evaluations and /v1/evaluations/{id}: a
model scored on one of your datasets (in the request, or by a worker for a large one),
and the scores kept with it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status

from app.api.deps import CallerDep, Ctx, PageDep, errors
from app.api.schemas.common import Page, openapi_examples
from app.api.schemas.evaluations import (
    EvaluationCreate,
    EvaluationResult,
    EvaluationRun,
    evaluation_body,
)
from app.services import evaluation_runs as service
from app.storage.tables import JobStatus

router = APIRouter(tags=["models"], responses=errors(401))


@router.post(
    "/v1/models/{model_id}/evaluate",
    status_code=status.HTTP_201_CREATED,
    response_model=EvaluationResult,
    responses={
        202: {
            "model": EvaluationRun,
            "description": "Queued for a worker (a dataset over BACKPROP_SYNC_EVALUATION_ROWS "
            "rows): GET /v1/evaluations/{id} until its status is succeeded",
        },
        **errors(404, 409, 413, 422, 429, 503),
    },
)
def evaluate(
    model_id: str,
    body: Annotated[EvaluationCreate, Body(openapi_examples=openapi_examples(EvaluationCreate))],
    ctx: Ctx,
    caller: CallerDep,
    response: Response,
) -> dict[str, Any]:
    """Score the model on a dataset and keep the result with the model.

    Classifiers: accuracy, log loss, ROC AUC, the confusion matrix, per-class precision,
    recall and f1 with their macro and weighted means (and the ROC curve for binary
    models); regression: mse, rmse, mae and r2, overall and per target, with sampled
    (actual, predicted) pairs. 422 when the dataset's width differs from the model's or
    its labels include ones the model never saw (the message names them).

    A dataset of more than BACKPROP_SYNC_EVALUATION_ROWS rows is scored by a worker: the
    answer is 202 with the evaluation queued (it counts toward BACKPROP_MAX_ACTIVE_JOBS);
    GET /v1/evaluations/{id} shows its progress, then the same scores.
    """
    row, state = service.evaluate(
        ctx.database,
        ctx.blobs,
        ctx.model_cache,
        ctx.settings,
        owner_id=caller.owner_id,
        model_id=model_id,
        dataset_id=body.dataset_id,
    )
    if state.status != JobStatus.SUCCEEDED:
        response.status_code = status.HTTP_202_ACCEPTED
    return evaluation_body(row, state)


@router.get(
    "/v1/evaluations/{evaluation_id}",
    response_model=EvaluationResult,
    responses=errors(404, 422),
)
def get_evaluation(evaluation_id: str, ctx: Ctx, caller: CallerDep) -> dict[str, Any]:
    """One evaluation: its scores, or (computed by a worker) its progress until then."""
    row, state = service.get_evaluation(
        ctx.database, owner_id=caller.owner_id, evaluation_id=evaluation_id
    )
    return evaluation_body(row, state)


@router.post(
    "/v1/evaluations/{evaluation_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EvaluationResult,
    responses=errors(404, 409, 422),
)
def cancel_evaluation(evaluation_id: str, ctx: Ctx, caller: CallerDep) -> dict[str, Any]:
    """Stop an evaluation a worker is computing: queued, it is cancelled now; running, it
    stops at the end of a chunk of rows once its worker renews its lease (every
    BACKPROP_LEASE_SECONDS / 3). 409 once it has ended (or was scored in its request)."""
    row, state = service.cancel_evaluation(
        ctx.database, owner_id=caller.owner_id, evaluation_id=evaluation_id
    )
    return evaluation_body(row, state)


@router.delete(
    "/v1/evaluations/{evaluation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404, 409, 422),
)
def delete_evaluation(evaluation_id: str, ctx: Ctx, caller: CallerDep) -> Response:
    """Delete an evaluation that has ended: its scores leave the model's list and card.
    409 while a worker may still compute it (cancel it first)."""
    service.delete_evaluation(ctx.database, owner_id=caller.owner_id, evaluation_id=evaluation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/models/{model_id}/evaluations",
    response_model=Page[EvaluationResult],
    responses=errors(404, 422),
)
def list_evaluations(model_id: str, ctx: Ctx, caller: CallerDep, page: PageDep) -> Page[Any]:
    """The model's evaluations, newest first (those a worker is computing included)."""
    rows, total = service.list_evaluations(
        ctx.database,
        owner_id=caller.owner_id,
        model_id=model_id,
        limit=page.limit,
        offset=page.offset,
    )
    return page.result([evaluation_body(row, state) for row, state in rows], total)
