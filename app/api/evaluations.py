"""/v1/models/{id}/evaluate and /v1/models/{id}/evaluations: a model scored on one of
your datasets, and the scores kept with it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, status

from app.api.deps import CallerDep, Ctx, PageDep, errors
from app.api.schemas.common import Page, openapi_examples
from app.api.schemas.evaluations import EvaluationCreate, EvaluationRead, evaluation_body
from app.services import evaluations as service

router = APIRouter(prefix="/v1/models", tags=["models"], responses=errors(401))


@router.post(
    "/{model_id}/evaluate",
    status_code=status.HTTP_201_CREATED,
    response_model=EvaluationRead,
    responses=errors(404, 409, 413, 422, 503),
)
def evaluate(
    model_id: str,
    body: Annotated[EvaluationCreate, Body(openapi_examples=openapi_examples(EvaluationCreate))],
    ctx: Ctx,
    caller: CallerDep,
) -> dict[str, Any]:
    """Score the model on a dataset and keep the result with the model.

    Classifiers: accuracy, log loss, ROC AUC, the confusion matrix, per-class precision,
    recall and f1 with their macro and weighted means (and the ROC curve for binary
    models); regression: mse, rmse, mae and r2, overall and per target, with sampled
    (actual, predicted) pairs. 422 when the dataset's width differs from the model's or
    its labels include ones the model never saw (the message names them).
    """
    row = service.evaluate_model(
        ctx.database,
        ctx.blobs,
        ctx.model_cache,
        ctx.settings,
        owner_id=caller.owner_id,
        model_id=model_id,
        dataset_id=body.dataset_id,
    )
    return evaluation_body(row)


@router.get(
    "/{model_id}/evaluations",
    response_model=Page[EvaluationRead],
    responses=errors(404, 422),
)
def list_evaluations(model_id: str, ctx: Ctx, caller: CallerDep, page: PageDep) -> Page[Any]:
    """The model's evaluations, newest first."""
    rows, total = service.list_evaluations(
        ctx.database,
        owner_id=caller.owner_id,
        model_id=model_id,
        limit=page.limit,
        offset=page.offset,
    )
    return page.result([evaluation_body(row) for row in rows], total)
