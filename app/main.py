"""The FastAPI application: routers, middleware, error handlers, lifespan.

``app = create_app()`` reads the settings but opens no database: the engine is created
on first use (or in the lifespan, which also registers ``BACKPROP_BOOTSTRAP_KEY``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from app.api import (
    datasets,
    evaluations,
    jobs,
    models,
    networks,
    ops,
    predict,
    predictions,
    sweeps,
)
from app.api import openapi as api_document
from app.api.body_errors import explain
from app.api.body_limit import BodySizeLimitMiddleware, BodyTooLarge
from app.api.body_timeout import BodyReadTimeout, BodyTimeoutMiddleware
from app.api.context import AppContext
from app.api.docs import mount_docs
from app.api.head_requests import HeadRequestMiddleware
from app.api.nul_path import NulPathMiddleware
from app.api.prometheus import MetricsMiddleware
from app.api.query_once import QueryOnceMiddleware
from app.api.schemas.events import EndEvent, EpochEvent, FindingsEvent, JobFindings
from app.api.schemas.jobs import JobEnd
from app.api.schemas.sweep_events import SweepEndEvent, TrialEvent
from app.api.schemas.sweeps import SweepEnd, TrialRead
from app.api.security_headers import SecurityHeadersMiddleware
from app.config import Settings, get_settings
from app.process_heap import freeze_startup_heap
from app.services.errors import ServiceError
from app.services.keys import ensure_bootstrap_key
from app.services.uploads.service import remove_stale_work
from app.storage.blobs import BlobError, BlobStore, BlobStoreUnavailable
from app.storage.database import UNAVAILABLE, Database, brief

log = logging.getLogger("backprop.api")
BLOB_RETRY_AFTER_SECONDS = 5
DATABASE_RETRY_AFTER_SECONDS = 2
UI_DIR = Path(__file__).resolve().parent / "ui"
RETRY_LATER = {"Retry-After": "5"}

TAGS = [
    {"name": "datasets", "description": "Training data: JSON, CSV or npz upload, generated"},
    {"name": "networks", "description": "Architectures: layers of units and activations"},
    {"name": "jobs", "description": "Training runs in background workers; live progress"},
    {"name": "models", "description": "Trained or imported weights: predict, export, import"},
    {"name": "ops", "description": "Liveness, readiness, Prometheus metrics (no key)"},
]

DESCRIPTION = """Train and serve neural networks (our own NumPy backpropagation).

Every `/v1` operation needs an API key: `Authorization: Bearer bp_...` (press
**Authorize**). Refusals are 4xx with `{"detail": [{"loc", "msg", "type"}]}`.
"""


def _bootstrap(ctx: AppContext) -> None:
    removed = remove_stale_work(ctx.settings)
    if removed:
        log.info("removed %d upload work folders of processes that died", removed)
    key = ctx.settings.bootstrap_key
    if not key:
        return
    try:
        with ctx.database.session() as session:
            ensure_bootstrap_key(session, key)
    except IntegrityError:
        log.info("bootstrap key registered by another process")


def _error(
    status_code: int, detail: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return _error(exc.status_code, exc.detail(), exc.headers)

    @app.exception_handler(BlobError)
    async def blob_error(_request: Request, exc: BlobError) -> JSONResponse:
        # Store down or full: retry later (503). A blob missing or corrupt: the stored
        # object is damaged, which no retry fixes (409, naming the blob).
        if isinstance(exc, BlobStoreUnavailable):
            log.warning("blob store unavailable: %s", exc.message)
            detail = [{"loc": ["blob_store"], "msg": exc.message, "type": "store_unavailable"}]
            return _error(503, detail, {"Retry-After": str(BLOB_RETRY_AFTER_SECONDS)})
        log.error("stored data unusable: %s", exc.message)
        kind = type(exc).__name__.removeprefix("Blob").lower()
        detail = [{"loc": ["blob", exc.sha256 or ""], "msg": exc.message, "type": f"blob_{kind}"}]
        return _error(409, detail)

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Down, restarting, unreachable, or (SQLite) locked past the busy timeout: the
        # request was fine, the same request later will do.
        log.warning(
            "database unavailable for %s %s: %s",
            request.method,
            request.url.path,
            brief(exc),
        )
        msg = "the database is unavailable (restarting or unreachable); retry later"
        detail = [{"loc": ["database"], "msg": msg, "type": "database_unavailable"}]
        return _error(503, detail, {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})

    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        body_field = getattr(request.scope.get("route"), "body_field", None)
        detail = explain(
            exc.errors(),
            content_type=request.headers.get("content-type"),
            body=exc.body,
            form=isinstance(getattr(body_field, "field_info", None), params.Form),
        )
        return _error(422, detail)

    @app.exception_handler(MemoryError)
    async def out_of_memory(request: Request, _exc: MemoryError) -> JSONResponse:
        # A request whose numbers need more memory than the machine has: refused like a
        # busy server (the limits should have caught it first; the log says which route).
        log.warning("out of memory answering %s %s", request.method, request.url.path)
        msg = "the server has not enough memory for this request; retry later or send less"
        return _error(503, [{"loc": [], "msg": msg, "type": "out_of_memory"}], RETRY_LATER)

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, _exc: RecursionError) -> JSONResponse:
        log.warning("input nested too deeply for %s %s", request.method, request.url.path)
        msg = "the request nests too deeply to be processed"
        return _error(422, [{"loc": ["body"], "msg": msg, "type": "too_deep"}])

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "error parsing the body" (undecodable JSON, broken multipart):
            # a 422 with a location, like every other malformed input.
            cause = exc.__cause__
            msg = f"the body cannot be parsed: {type(cause).__name__}: {cause}"[:500]
            return _error(422, [{"loc": ["body"], "msg": msg, "type": "body_invalid"}])
        if exc.status_code == 400 and isinstance(exc.__context__, MultiPartException):
            # Starlette's form parser refuses a broken multipart (or urlencoded) body with
            # a bare 400 before the route runs: a 422 at the body, like the case above.
            msg = f"the form body cannot be parsed: {exc.detail}"[:500]
            return _error(422, [{"loc": ["body"], "msg": msg, "type": "multipart"}])
        if isinstance(exc, BodyTooLarge | BodyReadTimeout):
            detail = exc.errors
        else:
            detail = [{"loc": [], "msg": str(exc.detail), "type": "http_error"}]
        return _error(exc.status_code, detail, dict(exc.headers or {}))


def _mount_ui(app: FastAPI) -> None:
    index = UI_DIR / "index.html"
    if not index.is_file():
        return
    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(index)


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    blobs: BlobStore | None = None,
) -> FastAPI:
    """The app for ``settings`` (default: the environment) on ``database`` and ``blobs``
    (default: those its settings name)."""
    settings = settings or get_settings()
    ctx = AppContext(settings, database, blobs)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_bootstrap, ctx)
        try:
            yield
        finally:
            ctx.close()

    app = FastAPI(
        title="Backprop",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        servers=[{"url": settings.public_url}],
        generate_unique_id_function=api_document.operation_id,
        lifespan=lifespan,
        docs_url=None,  # served from our own files by mount_docs, not from a CDN
        redoc_url=None,
    )
    app.state.backprop = ctx
    app.add_middleware(HeadRequestMiddleware)  # innermost: the others see the HEAD
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_paths=datasets.UPLOAD_PATHS,
    )
    app.add_middleware(BodyTimeoutMiddleware, seconds=settings.body_timeout_seconds)
    # Inside the metrics: their refusals are counted too (route "unmatched").
    app.add_middleware(QueryOnceMiddleware)
    app.add_middleware(NulPathMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    _install_error_handlers(app)
    # Routes are matched in order: predict (the hot path) first, then the short ops
    # router (probes, scrapes); their paths overlap nothing after them.
    routers = (predict, ops, datasets, networks, jobs, sweeps, models, evaluations, predictions)
    for module in routers:
        app.include_router(module.router)
    mount_docs(app)
    _mount_ui(app)
    api_document.install(
        app,
        extra_models=[
            *(JobEnd, JobFindings, EpochEvent, FindingsEvent, EndEvent),
            *(TrialRead, SweepEnd, TrialEvent, SweepEndEvent),
        ],
    )
    return app


app = create_app()


def served_app() -> FastAPI:
    """The app ``backprop serve``'s API process runs (app/api/http_server.py):
    :func:`create_app`, then the objects its startup made frozen out of the garbage
    collector's full passes (app/process_heap.py). Not done in ``create_app``: a test
    process that builds many apps must not keep each one's objects for ever."""
    served = create_app()
    freeze_startup_heap()
    return served
