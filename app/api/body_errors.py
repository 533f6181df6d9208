"""Plain words for a JSON body that FastAPI could not read, in the usual 422 items.

FastAPI reads a body as JSON only when its ``Content-Type`` says JSON; otherwise the model
gets the raw bytes and pydantic answers "Input should be a valid dictionary or object to
extract fields from", which does not say what to change. Undecodable JSON is reported as
"JSON decode error" at a character offset. :func:`explain` rewrites those items (and only
those) so the message says which header to send, or where the JSON breaks and what was
expected there; ``loc`` stays what FastAPI gives. A form route (a file upload) called
without ``multipart/form-data`` finds no fields at all: that is said once, at ["body"].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPE = "multipart/form-data"
BODY_LOC = ("body",)


def _line_and_column(document: str, position: int) -> tuple[int, int]:
    """1-based line and column of character ``position`` (as :class:`json.JSONDecodeError`)."""
    line = document.count("\n", 0, position) + 1
    return line, position - document.rfind("\n", 0, position)


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _content_type_message(content_type: str | None, expected: str = JSON_MEDIA_TYPE) -> str:
    said = f"says {content_type!r}" if content_type else "has no Content-Type header"
    kind = "JSON" if expected == JSON_MEDIA_TYPE else "a form (curl -F name=@file)"
    return (
        f"the body is read as {kind} only with the header 'Content-Type: {expected}'; "
        f"this request {said}"
    )


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def is_form(content_type: str | None) -> bool:
    """Whether a request with this Content-Type carries a multipart form."""
    return _media_type(content_type) == FORM_MEDIA_TYPE


def form_required(content_type: str | None) -> str:
    """What to say to a form route called without ``multipart/form-data``."""
    return _content_type_message(content_type, FORM_MEDIA_TYPE)


def _explain_one(error: Mapping[str, Any], content_type: str | None, body: Any) -> dict[str, Any]:
    loc = tuple(error.get("loc", ()))
    kind = str(error.get("type", "value_error"))
    msg = str(error.get("msg", ""))
    given = error.get("input")
    if kind == "json_invalid" and isinstance(body, str) and len(loc) == 2:
        line, column = _line_and_column(body, int(loc[1]))
        expected = (error.get("ctx") or {}).get("error", "invalid JSON")
        msg = f"the body is not valid JSON: {expected} at line {line} column {column}"
    elif loc == BODY_LOC and isinstance(given, bytes | bytearray):
        # Not parsed: the Content-Type did not say JSON.
        msg, kind = _content_type_message(content_type), "content_type"
    elif loc == BODY_LOC and kind == "missing":
        msg = f"the body is empty: send a JSON object with 'Content-Type: {JSON_MEDIA_TYPE}'"
    elif loc == BODY_LOC and kind == "model_attributes_type":
        msg = f"the body must be a JSON object {{...}}, not {_json_kind(given)}"
    return {"loc": list(loc), "msg": msg, "type": kind}


def explain(
    errors: Sequence[Mapping[str, Any]],
    *,
    content_type: str | None,
    body: Any,
    form: bool = False,
) -> list[dict[str, Any]]:
    """The 422 items for ``errors`` (pydantic's, as FastAPI raises them), without their
    ``input`` (it can be the whole body). ``content_type``: the request's header; ``body``:
    what FastAPI read (the JSON text when it could not decode it); ``form``: the route
    takes a multipart form."""
    if form and _media_type(content_type) != FORM_MEDIA_TYPE:
        outside = [e for e in errors if tuple(e.get("loc", ()))[:1] != BODY_LOC]
        message = _content_type_message(content_type, FORM_MEDIA_TYPE)
        refusal = {"loc": list(BODY_LOC), "msg": message, "type": "content_type"}
        return [*explain(outside, content_type=content_type, body=body), refusal]
    return [_explain_one(error, content_type, body) for error in errors]
