"""The hot path: predict with a cached model, parsing the body without pydantic.

With the key and the model cached, a predict touches no database: the owner check uses
the cached model's owner. ``x`` is parsed with orjson (:mod:`app.services.jsoncodec`, the standard
library's results at a tenth of its time) + one ``np.asarray``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import numpy as np
import orjson
from sqlalchemy import select

from app.config import Settings
from app.engine.model import Model as EngineModel
from app.services import jsoncodec
from app.services.errors import Invalid, LimitExceeded, NotFound
from app.services.model_cache import CachedModel, ModelCache
from app.services.models import PATH_LOC, architecture_size
from app.services.ownership import get_owned
from app.storage.blobs import BlobStore, read_verified
from app.storage.database import Database
from app.storage.npz import ArrayFileError, load_npy
from app.storage.tables import Model

X_LOC = ("body", "x")
NPY_LOC = ("body",)
NPY_MEDIA_TYPE = "application/x-npy"

_ROWS_START = re.compile(rb'[ \t\n\r]*\{[ \t\n\r]*"x"[ \t\n\r]*:[ \t\n\r]*\[[ \t\n\r]*')
_DOCUMENT_END = re.compile(rb"[ \t\n\r]*\}[ \t\n\r]*")
_SEPARATOR = re.compile(rb"[ \t\n\r]*([,\]])[ \t\n\r]*")
_TEXT_ROWS_START = re.compile(_ROWS_START.pattern.decode())
_TEXT_DOCUMENT_END = re.compile(_DOCUMENT_END.pattern.decode())
_TEXT_SEPARATOR = re.compile(_SEPARATOR.pattern.decode())
_DECODER = json.JSONDecoder()


def parse_rows(body: bytes, *, max_rows: int, by_row: bool = False) -> np.ndarray:
    """``{"x": [[...], ...]}`` -> float64 (rows, width); 422/413 naming what and where.

    ``by_row``: decode one row at a time (:func:`loads_by_row`), for a large body parsed
    in a worker thread.
    """
    try:
        document = loads_by_row(body) if by_row else jsoncodec.loads(body)
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
    rows = document["x"]
    if not isinstance(rows, list) or not rows:
        raise Invalid("x must be a non-empty list of rows", X_LOC)
    _check_row_count(len(rows), max_rows, X_LOC)
    try:
        x = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise Invalid(*_explain(rows)) from None
    if x.ndim != 2 or x.shape[1] == 0:
        raise Invalid(*_explain(rows))
    return x


def parse_npy(body: bytes, *, max_rows: int) -> np.ndarray:
    """A .npy body (``Content-Type: application/x-npy``) -> its (rows, width) array of real
    numbers; 422 / 413 naming what is wrong, at ``("body",)``. No JSON to parse and no
    Python float per value: a 256-row request costs its forward pass."""
    try:
        x = load_npy(body, name="body")
    except ArrayFileError as exc:
        raise Invalid(exc.message, NPY_LOC, error_type="npy_invalid") from None
    if x.dtype.kind not in "iuf":
        raise Invalid(
            f"the array must hold real numbers (integers or floats), got dtype {x.dtype}",
            NPY_LOC,
            error_type="npy_invalid",
        )
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise Invalid(
            f"the array must be 2-D (rows, features) with at least one row, got shape {x.shape}",
            NPY_LOC,
            error_type="npy_invalid",
        )
    _check_row_count(x.shape[0], max_rows, NPY_LOC)
    return x


def _check_row_count(rows: int, max_rows: int, loc: tuple[str, ...]) -> None:
    """413 when a predict request carries more rows than BACKPROP_MAX_PREDICT_ROWS."""
    if rows > max_rows:
        raise LimitExceeded(
            "predict rows", rows, setting="BACKPROP_MAX_PREDICT_ROWS", limit=max_rows, loc=loc
        )


def loads_by_row(body: bytes) -> Any:
    """:func:`json.loads` of a body, decoding ``{"x": [row, ...]}`` one row per C call.

    A whole-document parse holds the GIL for all of it (16 ms with orjson, 85 ms with the
    standard library for 256 rows of 784 numbers), so a worker thread parsing one would
    stall the event loop just as long. Between rows this returns to Python, where the
    interpreter hands the GIL to the loop within its switch interval (5 ms).

    A row is the bytes from its ``[`` to the next ``]``. When that slice is valid JSON to
    orjson it is exactly the row: a nested list or a string holding ``]`` would make it
    invalid. A row orjson refuses (NaN, 1e400, a nested list, ...) sends the body to
    :func:`_loads_by_row_stdlib`, still one row per call; anything but this shape (other
    keys, a BOM, trailing data) goes to :func:`jsoncodec.loads` whole. The result, or the
    error, is always that of :func:`json.loads`.
    """
    start = _ROWS_START.match(body)
    if start is None:
        return jsoncodec.loads(body)
    rows: list[Any] = []
    at = start.end()
    if body.startswith(b"]", at):
        at += 1
    else:
        while True:
            end = body.find(b"]", at)
            if end < 0 or not body.startswith(b"[", at):
                return _loads_by_row_stdlib(body)
            try:
                rows.append(orjson.loads(body[at : end + 1]))
            except orjson.JSONDecodeError:
                return _loads_by_row_stdlib(body)
            separator = _SEPARATOR.match(body, end + 1)
            if separator is None:
                return _loads_by_row_stdlib(body)
            at = separator.end()
            if separator.group(1) == b"]":
                break
    if _DOCUMENT_END.fullmatch(body, at) is None:
        return jsoncodec.loads(body)  # more keys, or trailing data
    return {"x": rows}


def _loads_by_row_stdlib(body: bytes) -> Any:
    """:func:`loads_by_row` with the standard library's decoder, one row per call; the
    same shape rules, and :func:`json.loads` whole for anything else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return json.loads(body)
    start = _TEXT_ROWS_START.match(text)
    if start is None:
        return json.loads(body)
    rows: list[Any] = []
    at = start.end()
    if text.startswith("]", at):
        at += 1
    else:
        while True:
            row, at = _DECODER.raw_decode(text, at)
            rows.append(row)
            separator = _TEXT_SEPARATOR.match(text, at)
            if separator is None:
                return json.loads(body)  # raises json.loads's own error
            at = separator.end()
            if separator.group(1) == "]":
                break
    if _TEXT_DOCUMENT_END.fullmatch(text, at) is None:
        return json.loads(body)  # more keys, or trailing data
    return {"x": rows}


def _explain(rows: list[Any]) -> tuple[str, tuple[str | int, ...]]:
    """Why ``rows`` is not a rectangular list of number rows, and where."""
    width = len(rows[0]) if isinstance(rows[0], list) else -1
    for i, row in enumerate(rows):
        if not isinstance(row, list) or not row:
            return "each row must be a non-empty list of numbers", (*X_LOC, i)
        if len(row) != width:
            return f"row {i} has {len(row)} values, row 0 has {width}", (*X_LOC, i)
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "values must be numbers", (*X_LOC, i, j)
    return "x must be rows of numbers", X_LOC


def cached_model(
    cache: ModelCache, settings: Settings, *, owner_id: int, model_id: str
) -> CachedModel | None:
    """The cached entry when it is usable without the database, else None."""
    entry = cache.get(model_id)
    if entry is None or not entry.is_fresh(settings.key_cache_seconds):
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
    database, the weights from the blob store (checked against their hash)."""
    entry = cache.get(model_id)
    if entry is not None:
        with db.read_session() as session:
            owner = session.scalar(select(Model.owner_id).where(Model.id == model_id))
        if owner is None:
            cache.drop(model_id)
        else:
            entry.checked_at = time.monotonic()
            if owner != owner_id:
                raise NotFound("model", PATH_LOC)
            return entry
    with db.read_session() as session:
        row = get_owned(session, Model, model_id, owner_id=owner_id, loc=PATH_LOC)
    model = EngineModel.from_export(read_verified(blobs, row.weights_sha256), row.config)
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


def predict(entry: CachedModel, x: np.ndarray, *, loc: tuple[str, ...] = X_LOC) -> dict[str, Any]:
    """Outputs (rows, output_size), plus labels for classifiers. ``loc``: where the rows
    are in the request (``("body", "x")`` for JSON, ``("body",)`` for a .npy body); errors
    about a row or a value add its indices."""
    if x.shape[1] != entry.input_size:
        raise Invalid(
            f"rows have {x.shape[1]} values, the model takes {entry.input_size}",
            loc,
            error_type="shape_mismatch",
        )
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = x.astype(np.float32)
    if not np.isfinite(x32).all():
        row, col = (int(v) for v in np.argwhere(~np.isfinite(x32))[0])
        raise Invalid(
            "values must be finite float32 numbers (no NaN, inf or overflow)", (*loc, row, col)
        )
    # Finite inputs can still overflow inside the network (a linear output of huge values):
    # refuse them rather than answer NaN/inf, which JSON cannot carry, or a label picked
    # from NaN scores.
    with np.errstate(all="ignore"):
        outputs = entry.model.predict_checked(x32.astype(entry.model.network.dtype, copy=False))
    if not np.isfinite(outputs).all():
        row = int(np.argwhere(~np.isfinite(outputs))[0][0])
        raise Invalid(
            "the model's outputs overflow for this row: its values are too large for the model",
            (*loc, row),
            error_type="non_finite_output",
        )
    result: dict[str, Any] = {"outputs": outputs.tolist()}
    if entry.model.classes is not None:
        result["labels"] = [_plain(v) for v in entry.model.labels(outputs)]
    return result


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
