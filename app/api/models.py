"""/v1/models: trained or imported models, their cards, exports (ONNX, Python, npz) and
weight import (predict: predict.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.responses import StreamingResponse

from app.api.deps import CallerDep, Ctx, PageDep, errors, json_errors
from app.api.export_docs import CARD_RESPONSE, EXPORT_FORMAT_DOC, EXPORT_RESPONSE
from app.api.schemas.cards import ModelDetail
from app.api.schemas.common import NO_NUL, Page
from app.api.schemas.models import ModelRead
from app.services import exports, model_card_markdown
from app.services import models as service
from app.services.exports import ExportFormat
from app.services.model_card import model_card
from app.storage.tables import Model

router = APIRouter(prefix="/v1/models", tags=["models"], responses=errors(401))


def _read(row: Model) -> ModelRead:
    return ModelRead.from_row(row, service.architecture_size(row.config))


@router.get("", response_model=Page[ModelRead], responses=errors(422))
def list_models(
    ctx: Ctx,
    caller: CallerDep,
    page: PageDep,
    network_id: Annotated[
        str | None, Query(max_length=64, pattern=NO_NUL, description="Only models of this network")
    ] = None,
    dataset_id: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=NO_NUL,
            description="Only models trained on this dataset (by a job)",
        ),
    ] = None,
) -> Page[ModelRead]:
    rows, total = service.list_models(
        ctx.database,
        owner_id=caller.owner_id,
        network_id=network_id,
        dataset_id=dataset_id,
        limit=page.limit,
        offset=page.offset,
    )
    return page.result([_read(r) for r in rows], total)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelRead,
    responses=errors(404, 413, 422, 503),
)
def import_model(
    network_id: Annotated[str, Form(max_length=64, pattern=NO_NUL)],
    file: Annotated[UploadFile, File(description="npz in the export format (W1.., b1..)")],
    ctx: Ctx,
    caller: CallerDep,
    config: Annotated[
        str | None,
        Form(description="Optional: a model's `config` JSON (task, classes, standardize)"),
    ] = None,
) -> ModelRead:
    """A model from weights for one of your networks.

    Without `config`, the network's loss decides the task: binary_crossentropy (one
    sigmoid unit) imports as a binary classifier with classes [0, 1],
    categorical_crossentropy (k softmax units) as a multiclass one with classes 0..k-1,
    mse as regression; inputs are standardised when the npz holds x_mean and x_std. With
    `config` (as GET /v1/models/{id} shows it), its network must be this one and its
    task must match the loss; its classes and standardize are used as given.
    """
    row = service.import_model(
        ctx.database,
        ctx.blobs,
        ctx.settings,
        owner_id=caller.owner_id,
        network_id=network_id,
        data=file.file.read(),
        config_text=config,
    )
    return _read(row)


@router.get("/{model_id}", response_model=ModelDetail, responses=errors(404, 422))
def get_model(model_id: str, ctx: Ctx, caller: CallerDep) -> ModelDetail:
    """The model and its card (the facts of GET /v1/models/{id}/card, as JSON)."""
    row, card = model_card(ctx.database, ctx.blobs, owner_id=caller.owner_id, model_id=model_id)
    return ModelDetail.from_card(row, card)


@router.get(
    "/{model_id}/card",
    response_class=Response,
    responses={**CARD_RESPONSE, **json_errors(401, 404, 422)},
)
def get_model_card(model_id: str, ctx: Ctx, caller: CallerDep) -> Response:
    """The model card as Markdown: architecture, training data, options, metrics, lineage."""
    _row, card = model_card(ctx.database, ctx.blobs, owner_id=caller.owner_id, model_id=model_id)
    return Response(model_card_markdown.render(card), media_type=model_card_markdown.MEDIA_TYPE)


@router.get(
    "/{model_id}/export",
    response_class=StreamingResponse,
    responses={**EXPORT_RESPONSE, **json_errors(401, 404, 422)},
)
def export_model(
    model_id: str,
    ctx: Ctx,
    caller: CallerDep,
    export_format: Annotated[ExportFormat, Query(alias="format", **EXPORT_FORMAT_DOC)] = (
        ExportFormat.NPZ
    ),
) -> StreamingResponse:
    """The model as a file to take elsewhere: ONNX, one NumPy-only Python file, or npz."""
    exported = exports.export_model(
        ctx.database,
        ctx.blobs,
        owner_id=caller.owner_id,
        model_id=model_id,
        export_format=export_format,
    )
    return StreamingResponse(
        exported.chunks,
        media_type=exported.media_type,
        headers={"Content-Disposition": f'attachment; filename="{exported.filename}"'},
    )


@router.delete(
    "/{model_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404, 409, 422),
)
def delete_model(model_id: str, ctx: Ctx, caller: CallerDep) -> Response:
    """Delete (409 while a queued or running job starts from it)."""
    service.delete_model(ctx.database, ctx.model_cache, owner_id=caller.owner_id, model_id=model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{model_id}/weights",
    response_class=Response,
    responses={
        200: {
            "description": "The engine's npz export",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **json_errors(401, 404, 409, 422, 503),
    },
)
def get_model_weights(model_id: str, ctx: Ctx, caller: CallerDep) -> Response:
    """W1..WL (n[l], n[l-1]), b1..bL, and x_mean/x_std when standardised: an npz."""
    data = service.model_weights(
        ctx.database, ctx.blobs, owner_id=caller.owner_id, model_id=model_id
    )
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{model_id}.npz"'},
    )
