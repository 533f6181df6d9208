"""POST /v1/models/{model_id}/predict (JSON) and .../predict.npy (a .npy file): the hot path.

app.main includes this router before every other, so the route is matched first, and
the endpoint checks the key itself (same cache, same 401s as ``CallerDep``) rather than
through FastAPI's dependency solving. With the key and the model cached, a request
reads nothing from the database.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from app.api.auth import SECURITY, request_caller
from app.api.context import context
from app.api.deps import errors
from app.api.schemas.common import openapi_examples
from app.api.schemas.models import PredictRequest, PredictResponse
from app.services import jsoncodec
from app.services import predict as predicting
from app.services.errors import Invalid, Loc
from app.services.model_cache import CachedModel


class DirectRoute(APIRoute):
    """An APIRoute that calls its endpoint with the request and the path parameters (as
    strings), without FastAPI's per-request dependency solving and parameter validation:
    measured by ``bench/route_ab.py``, an ordinary route serves 10-18% fewer 1-row
    predicts per second, 23-29% with the caller as a dependency (BENCHMARKS.md §3). The
    endpoint's signature still drives the OpenAPI document; it must take only ``request``
    and ``str`` path parameters, check everything itself and return a Response."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        # What the lean handler below does not do, it must not be asked to: fail at import.
        path_names = {param.name for param in self.dependant.path_params}
        allowed = {"request", *path_names}
        if (
            self.dependant.dependencies
            or not inspect.iscoroutinefunction(endpoint)
            or set(inspect.signature(endpoint).parameters) != allowed
        ):
            raise TypeError(
                f"DirectRoute {path}: the endpoint must be async, take only `request` and "
                "the path parameters, and have no dependencies"
            )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(request=request, **request.path_params)
            return response

        return handler


router = APIRouter(prefix="/v1/models", tags=["models"], route_class=DirectRoute)

# Above this many multiply-adds a predict runs in a worker thread, not on the event loop.
INLINE_PREDICT_WORK = 2_000_000
# Above this many body bytes the rows are parsed in a worker thread.
INLINE_PARSE_BYTES = 256 * 1024


@router.post(
    "/{model_id}/predict",
    response_model=PredictResponse,
    responses=errors(401, 404, 409, 413, 422, 503),
    openapi_extra={
        "security": SECURITY,
        "requestBody": {
            "required": True,
            "description": (
                "The rows as JSON. (A .npy body with `Content-Type: application/x-npy` is "
                "also taken here; `predict_npy` documents that way.)"
            ),
            "content": {
                "application/json": {
                    "schema": PredictRequest.model_json_schema(),
                    "examples": openapi_examples(PredictRequest),
                },
            },
        },
    },
)
async def predict(model_id: str, request: Request) -> Response:
    """Outputs for rows of raw features; labels too for classifiers."""
    caller = await request_caller(request)
    return await respond(request, owner_id=caller.owner_id, model_id=model_id)


@router.post(
    "/{model_id}/predict.npy",
    response_model=PredictResponse,
    responses=errors(401, 404, 413, 422),
    openapi_extra={
        "security": SECURITY,
        "requestBody": {
            "required": True,
            "description": (
                "One .npy file holding a 2-D array (rows, features) of integers or floats "
                "(`numpy.save` to a buffer), whatever the Content-Type says: no JSON to "
                "parse, the fast way to send many rows."
            ),
            # Documented as octet-stream, which client generators send as raw bytes
            # (they warn on, and drop, a body of an unknown type such as application/x-npy).
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
    },
)
async def predict_npy(model_id: str, request: Request) -> Response:
    """Like predict, with the rows as a .npy file: same answer, same limits."""
    caller = await request_caller(request)
    return await respond(
        request, owner_id=caller.owner_id, model_id=model_id, media_type=predicting.NPY_MEDIA_TYPE
    )


async def respond(
    request: Request, *, owner_id: int, model_id: str, media_type: str | None = None
) -> Response:
    """The predict response for the caller ``owner_id``; the body is read as
    ``media_type`` (default: as its Content-Type says)."""
    ctx = context(request)
    entry = predicting.cached_model(
        ctx.model_cache, ctx.settings, owner_id=owner_id, model_id=model_id
    )
    if entry is None:
        load = partial(
            predicting.load_model,
            ctx.database,
            ctx.blobs,
            ctx.model_cache,
            ctx.settings,
            owner_id=owner_id,
            model_id=model_id,
        )
        entry = await ctx.model_loads.run((owner_id, model_id), load)
    if media_type is None:
        said = request.headers.get("content-type")
        media_type = (said or "").partition(";")[0].strip().lower()
        if not _readable(media_type):
            raise Invalid(_type_message(said), ("body",), error_type="content_type")
    body = await request.body()
    parse = partial(
        predicting.parse_body,
        body,
        media_type,
        width=entry.input_size,
        max_rows=ctx.settings.max_predict_rows,
    )
    # A big JSON body takes a while to parse: off the event loop, like a big forward pass.
    x, loc = await run_in_threadpool(parse) if len(body) > INLINE_PARSE_BYTES else parse()
    answer = partial(_answer, entry, x, loc, ctx.settings.max_activation_bytes)
    if predicting.multiply_adds(entry, x) > INLINE_PREDICT_WORK:
        content = await run_in_threadpool(answer)
    else:
        content = answer()
    return Response(content, media_type="application/json")


def _readable(media_type: str) -> bool:
    """A predict body's type: JSON (none said, as FastAPI's JSON bodies, application/json
    or a +json type) or a .npy file."""
    return media_type in ("", "application/json", predicting.NPY_MEDIA_TYPE) or media_type.endswith(
        "+json"
    )


def _type_message(content_type: str | None) -> str:
    return (
        "the body is read as JSON only with the header 'Content-Type: application/json' "
        f"(or as a .npy file with 'Content-Type: {predicting.NPY_MEDIA_TYPE}'); this "
        f"request says {content_type!r}"
    )


def _answer(entry: CachedModel, x: np.ndarray, loc: Loc, max_activation_bytes: int) -> bytes:
    """The response body: predict, then encode (in the same thread: both are big for big x)."""
    outputs = predicting.predict(entry, x, loc=loc, max_activation_bytes=max_activation_bytes)
    return jsoncodec.dumps(outputs)
