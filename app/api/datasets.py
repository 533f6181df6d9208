"""/v1/datasets: create (JSON, upload, generate), list, read, sample rows, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Body,
    Depends,
    File,
    Form,
    Query,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData

from app.api.body_errors import form_required, is_form
from app.api.deps import CallerDep, Ctx, PageDep, QueryInt, errors, json_errors
from app.api.schemas.common import Page, openapi_examples
from app.api.schemas.datasets import DatasetCreate, DatasetData, DatasetGenerate, DatasetRead
from app.services import datasets as service
from app.services.errors import Invalid
from app.services.text import CONTROL, has_control_character
from app.services.uploads import service as uploads

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


UPLOAD_PATH = "/v1/datasets/upload"
UPLOAD_PATHS = frozenset({UPLOAD_PATH})
UPLOAD_PARTS = ("file", "x", "y", "name", "target")  # each taken once


async def _form(request: Request) -> FormData:
    """The upload's parts as parsed for the operation's fields (Starlette keeps the form
    it parsed: this reads it again, not the body), to see what came more than once: the
    fields take the last of a repeated part."""
    return await request.form()


@router.post(
    "/upload",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses=errors(413, 422, 503),
)
def upload_dataset(
    request: Request,
    form: Annotated[FormData, Depends(_form)],
    ctx: Ctx,
    caller: CallerDep,
    file: Annotated[
        UploadFile | None,
        File(description="CSV (header optional) or npz holding arrays x and y"),
    ] = None,
    x: Annotated[
        UploadFile | None, File(description="Instead of file: x as a .npy (rows, features)")
    ] = None,
    y: Annotated[UploadFile | None, File(description="With x: y as a .npy (rows,)")] = None,
    name: Annotated[str | None, Form(max_length=200, description="Default: file name")] = None,
    target: Annotated[
        str | None,
        Form(
            max_length=200,
            description="CSV label column: a header name or a 0-based index (default: last)",
        ),
    ] = None,
) -> DatasetRead:
    """A dataset from a file of any size (up to ``BACKPROP_MAX_UPLOAD_BYTES``, 4 GiB by
    default): CSV, an npz with arrays ``x`` and ``y``, or ``x`` and ``y`` as two .npy files.
    The body streams to disk and is parsed in blocks, never held in memory whole."""
    content_type = request.headers.get("content-type")
    if not is_form(content_type):
        raise Invalid(form_required(content_type), ("body",), error_type="content_type")
    if file is None and x is None and y is None:
        raise Invalid(
            "Field required: send 'file' (a CSV or an npz), or 'x' and 'y' (two .npy files)",
            ("body", "file"),
            error_type="missing",
        )
    for part in UPLOAD_PARTS:
        if (count := len(form.getlist(part))) > 1:
            raise Invalid(
                f"send one '{part}' part; this body has {count}",
                ("body", part),
                error_type="duplicate_part",
            )
    given = "x" if file is None and x is not None else "file"
    if (file is None) == (x is None) or (x is None) != (y is None):
        raise Invalid("send either 'file', or both 'x' and 'y'", ("body", given))
    upload = file or x
    assert upload is not None
    if name is not None and has_control_character(name):
        raise Invalid(
            "a name cannot hold control characters (NUL, tab, newline)",
            ("body", "name"),
            error_type="control_character",
        )
    row = uploads.upload_dataset(
        ctx.database,
        ctx.blobs,
        ctx.settings,
        owner_id=caller.owner_id,
        file=None if file is None else file.file,
        x=None if x is None else x.file,
        y=None if y is None else y.file,
        filename=CONTROL.sub("", upload.filename or "") or "upload",
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
    limit: Annotated[QueryInt, Query(ge=1, le=100_000, description="Rows to return")] = 1000,
) -> DatasetData:
    """The first ``limit`` rows of x and y (for plotting). 409 when the stored arrays are
    missing or corrupt (the message names the blob)."""
    x, y, n_samples = service.dataset_rows(
        ctx.database, ctx.blobs, owner_id=caller.owner_id, dataset_id=dataset_id, limit=limit
    )
    return DatasetData(x=x, y=y, n_samples=n_samples)


@router.get(
    "/{dataset_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "An npz archive holding x (float32, rows x features) and y",
        },
        **json_errors(404, 409, 422, 503),
    },
)
def download_dataset(dataset_id: str, ctx: Ctx, caller: CallerDep) -> StreamingResponse:
    """The whole dataset as an npz (``x.npy`` float32, ``y.npy``), streamed."""
    filename, chunks = service.download_dataset(
        ctx.database, ctx.blobs, owner_id=caller.owner_id, dataset_id=dataset_id
    )
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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
