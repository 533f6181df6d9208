"""The hot path: predict with a cached model, parsing the body without pydantic.

With the key and the model cached, a predict touches no database: the owner check uses
the cached model's owner. The rows come as JSON (``{"x": [[...], ...]}``, parsed with
orjson by :mod:`app.services.jsoncodec`: the standard library's results at a tenth of its
time) or as one .npy file (``Content-Type: application/x-npy``: no text to parse, the
fast way to send many rows); either way the engine's feature check turns them into
float32 (rows, input_size).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sqlalchemy import select

from app.config import Settings
from app.engine.errors import ExportFormatError
from app.engine.model import Model
from app.engine.npzio import load_npy
from app.services import jsoncodec
from app.services.arrays import feature_matrix
from app.services.errors import Invalid, LimitExceeded, Loc, NotFound
from app.services.model_cache import CachedModel, ModelCache
from app.services.models import PATH_LOC, architecture_size
from app.services.ownership import get_owned
from app.storage import tables
from app.storage.blobs import BlobStore, read_verified
from app.storage.database import UNAVAILABLE, Database

X_LOC = ("body", "x")
NPY_LOC = ("body",)
NPY_MEDIA_TYPE = "application/x-npy"


def parse_body(
    body: bytes, media_type: str, *, width: int, max_rows: int
) -> tuple[np.ndarray, Loc]:
    """The rows of a predict body as float32 (rows, ``width``), and where they are in the
    request: ``("body",)`` for a .npy body (``media_type`` application/x-npy), else
    ``("body", "x")``; 422 / 413 naming what is wrong and where."""
    if media_type == NPY_MEDIA_TYPE:
        return parse_npy(body, width=width, max_rows=max_rows), NPY_LOC
    return parse_rows(body, width=width, max_rows=max_rows), X_LOC


def parse_rows(body: bytes, *, width: int, max_rows: int) -> np.ndarray:
    """``{"x": [[...], ...]}`` -> float32 (rows, ``width``)."""
    try:
        document = jsoncodec.loads(body)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors, and so is the standard
        # library's refusal of an integer over 4300 digits; RecursionError: lists nested
        # deeper than the interpreter's stack.
        raise Invalid(
            f"the body is not JSON: {exc}", ("body",), error_type="json_invalid"
        ) from None
    if not isinstance(document, dict) or "x" not in document:
        raise Invalid(
            'the body must be a JSON object {"x": [[...], ...]}', ("body",), error_type="missing"
        )
    if len(document) > 1:  # as every other body: no field it does not know
        extra = next(key for key in document if key != "x")
        raise Invalid(
            f'unknown field {extra!r}: the body is {{"x": [[...], ...]}}',
            ("body", extra),
            error_type="extra_forbidden",
        )
    rows = document["x"]
    if isinstance(rows, list):
        _check_row_count(len(rows), max_rows, X_LOC)
        # More quotes than the key's two: a string among the values; a true or false: a
        # boolean (both cheap to rule out on the bytes, before any walk over the rows).
        if body.count(b'"') > 2 or b"true" in body or b"false" in body:
            _refuse_non_numbers(rows)
    return feature_matrix(rows, X_LOC, width=width)


def _refuse_non_numbers(rows: list[Any]) -> None:
    """422 at the first string or boolean among the values of ``rows`` (NumPy would read
    "1" as 1.0 and true as 1.0), as a dataset body's numbers are checked."""
    for i, row in enumerate(rows):
        for j, value in enumerate(row if isinstance(row, list) else ()):
            if isinstance(value, str | bool):
                kind = "a string" if isinstance(value, str) else "a boolean"
                raise Invalid(
                    f"values must be numbers: row {i}, column {j} is {kind}, {value!r:.40}",
                    (*X_LOC, i, j),
                    error_type="float_type",
                )


def parse_npy(body: bytes, *, width: int, max_rows: int) -> np.ndarray:
    """A .npy body holding a 2-D array of integers or floats -> float32 (rows, ``width``).
    No JSON to parse and no Python float per value: a 256-row request costs its forward
    pass."""
    try:
        x = load_npy(body, name="body")
    except ExportFormatError as exc:
        raise Invalid(exc.message, NPY_LOC, error_type="npy_invalid") from None
    if x.ndim > 0:
        _check_row_count(x.shape[0], max_rows, NPY_LOC)
    return feature_matrix(x, NPY_LOC, width=width, whole_error_type="npy_invalid")


def _check_row_count(rows: int, max_rows: int, loc: Loc) -> None:
    """413 when a predict request carries more rows than BACKPROP_MAX_PREDICT_ROWS."""
    if rows > max_rows:
        raise LimitExceeded(
            "predict rows", rows, setting="BACKPROP_MAX_PREDICT_ROWS", limit=max_rows, loc=loc
        )


def cached_model(
    cache: ModelCache, settings: Settings, *, owner_id: int, model_id: str
) -> CachedModel | None:
    """The cached entry when it is usable without the database, else None."""
    entry = cache.get(model_id)
    if entry is None or not entry.is_fresh(settings.model_recheck_seconds):
        return None
    if entry.owner_id != owner_id:
        raise NotFound("model", PATH_LOC)
    return entry


def load_model(
    db: Database,
    blobs: BlobStore,
    cache: ModelCache,
    settings: Settings,
    *,
    owner_id: int,
    model_id: str,
) -> CachedModel:
    """The model from the cache if its row still exists, else loaded: the row from the
    database, the weights from the blob store (checked against their hash). While the
    database is unreachable, a cached model checked within the recheck interval plus
    ``settings.db_outage_grace_seconds`` is returned as it is."""
    entry = cache.get(model_id)
    if entry is not None:
        try:
            with db.read_session() as session:
                owner = session.scalar(
                    select(tables.Model.owner_id).where(tables.Model.id == model_id)
                )
        except UNAVAILABLE:
            # The database is away (a restart): a model verified shortly before keeps
            # answering, its owner checked against the one cached with it.
            grace = settings.model_recheck_seconds + settings.db_outage_grace_seconds
            if not entry.is_fresh(grace):
                raise
            if entry.owner_id != owner_id:
                raise NotFound("model", PATH_LOC) from None
            return entry
        if owner is None:
            cache.drop(model_id)
        else:
            entry.checked_at = time.monotonic()
            if owner != owner_id:
                raise NotFound("model", PATH_LOC)
            return entry
    with db.read_session() as session:
        row = get_owned(session, tables.Model, model_id, owner_id=owner_id, loc=PATH_LOC)
    model = Model.from_export(read_verified(blobs, row.weights_sha256), row.config)
    entry = CachedModel(
        owner_id=row.owner_id,
        model=model,
        input_size=int(row.config["network"]["input_size"]),
        parameter_count=architecture_size(row.config),
        checked_at=time.monotonic(),
    )
    cache.put(model_id, entry)
    return entry


def multiply_adds(entry: CachedModel, x: np.ndarray) -> int:
    """About what predicting ``x`` (rows, width) costs: rows x the model's parameters."""
    return int(x.shape[0]) * entry.parameter_count


def predict(
    entry: CachedModel,
    x: np.ndarray,
    *,
    loc: Loc = X_LOC,
    max_activation_bytes: int | None = None,
) -> dict[str, Any]:
    """Outputs (rows, output_size) for ``x``, float32 (rows, input_size) as
    :func:`parse_body` returns it, plus labels for classifiers. ``loc``: where the rows are
    in the request; an error about a row adds its index. The outputs stay an array (the
    model's dtype): :func:`jsoncodec.dumps` writes each as its shortest decimal.
    ``max_activation_bytes`` (BACKPROP_MAX_ACTIVATION_BYTES): the forward pass runs in row
    blocks whose activations stay under it."""
    # Finite inputs can still overflow inside the network (a linear output of huge values):
    # refuse them rather than answer NaN/inf, which JSON cannot carry, or a label picked
    # from NaN scores.
    with np.errstate(all="ignore"):
        xs = x.astype(entry.model.network.dtype, copy=False)
        outputs = entry.model.predict_checked(xs, max_activation_bytes)
    if not np.isfinite(outputs).all():
        row = int(np.argwhere(~np.isfinite(outputs))[0][0])
        raise Invalid(
            "the model's outputs overflow for this row: its values are too large for the model",
            (*loc, row),
            error_type="non_finite_output",
        )
    result: dict[str, Any] = {"outputs": outputs}
    if entry.model.classes is not None:
        result["labels"] = [_plain(v) for v in entry.model.labels(outputs)]
    return result


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
