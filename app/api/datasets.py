"""/v1/datasets: create (JSON, upload, generate), list, read, sample rows, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, File, Form, Query, Response, UploadFile, status

from app.api.deps import CallerDep, Ctx, PageDep, errors
from app.api.schemas.common import Page, openapi_examples
from app.api.schemas.datasets import DatasetCreate, DatasetData, DatasetGenerate, DatasetRead
from app.services import datasets as service

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=errors(401))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses=errors(413, 422, 503),
)
def create_dataset(
    body: Annotated[DatasetCreate, Body(openapi_examples=openapi_examples(DatasetCreate))],
    ctx: Ctx,
    caller: CallerDep,
) -> DatasetRead:
    """A dataset from JSON arrays: ``x`` (rows of numbers) and ``y`` (labels or targets)."""
    row = service.create_dataset(
        ctx.database,
        ctx.blobs,
        ctx.settings,
        owner_id=caller.owner_id,
        name=body.name,
        x=body.x,
        y=body.y,
    )
    return DatasetRead.model_validate(row)


@router.post(
    "/upload",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses=errors(413, 422, 503),
)
def upload_dataset(
    file: Annotated[UploadFile, File(description="CSV with a header row, or npz with x and y")],
    ctx: Ctx,
    caller: CallerDep,
    name: Annotated[str | None, Form(max_length=200, description="Default: file name")] = None,
    target: Annotated[
        str | None, Form(max_length=200, description="CSV label column (default: last)")
    ] = None,
) -> DatasetRead:
    """A dataset from a file: CSV (``target`` names the label column) or npz (arrays x, y)."""
    row = service.upload_dataset(
        ctx.database,
        ctx.blobs,
        ctx.settings,
        owner_id=caller.owner_id,
        data=file.file.read(),
        filename=file.filename or "upload",
        name=name,
        target=target,
    )
    return DatasetRead.model_validate(row)


@router.post(
    "/generate",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses=errors(413, 422, 503),
)
def generate_dataset(
    body: Annotated[DatasetGenerate, Body(openapi_examples=openapi_examples(DatasetGenerate))],
    ctx: Ctx,
    caller: CallerDep,
) -> DatasetRead:
    """A toy 2-D classification set: xor, moons, circles, spirals or blobs."""
    row = service.generate_dataset(
        ctx.database,
        ctx.blobs,
        ctx.settings,
        owner_id=caller.owner_id,
        kind=body.kind,
        n_samples=body.n_samples,
        noise=body.noise,
        classes=body.classes,
        seed=body.seed,
        name=body.name,
    )
    return DatasetRead.model_validate(row)


@router.get("", response_model=Page[DatasetRead], responses=errors(422))
def list_datasets(ctx: Ctx, caller: CallerDep, page: PageDep) -> Page[DatasetRead]:
    rows, total = service.list_datasets(
        ctx.database, owner_id=caller.owner_id, limit=page.limit, offset=page.offset
    )
    return page.result([DatasetRead.model_validate(r) for r in rows], total)


@router.get("/{dataset_id}", response_model=DatasetRead, responses=errors(404, 422))
def get_dataset(dataset_id: str, ctx: Ctx, caller: CallerDep) -> DatasetRead:
    """Shape, label kind and classes, per-feature statistics, content hash."""
    row = service.get_dataset(ctx.database, owner_id=caller.owner_id, dataset_id=dataset_id)
    return DatasetRead.model_validate(row)


@router.get("/{dataset_id}/data", response_model=DatasetData, responses=errors(404, 409, 422, 503))
def get_dataset_data(
    dataset_id: str,
    ctx: Ctx,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Rows to return")] = 1000,
) -> DatasetData:
    """The first ``limit`` rows of x and y (for plotting). 409 when the stored arrays are
    missing or corrupt (the message names the blob)."""
    x, y, n_samples = service.dataset_rows(
        ctx.database, ctx.blobs, owner_id=caller.owner_id, dataset_id=dataset_id, limit=limit
    )
    return DatasetData(x=x, y=y, n_samples=n_samples)


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(404, 409, 422),
)
def delete_dataset(dataset_id: str, ctx: Ctx, caller: CallerDep) -> Response:
    """Delete, unless a queued or running job uses it (409)."""
    service.delete_dataset(ctx.database, owner_id=caller.owner_id, dataset_id=dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
