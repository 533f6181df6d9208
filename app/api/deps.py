"""Dependencies shared by the routers: context, caller, pagination, documented errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from app.api.auth import require_caller
from app.api.context import AppContext, context
from app.api.schemas.common import ErrorResponse, Page
from app.services.keys import Caller


async def get_context(request: Request) -> AppContext:
    return context(request)


Ctx = Annotated[AppContext, Depends(get_context)]
CallerDep = Annotated[Caller, Depends(require_caller)]


T = TypeVar("T")


def _digits_only(value: Any) -> Any:
    """A query's whole number as decimal digits only: pydantic's own parse also takes
    ``5.0``, `` 5``, ``+5`` and ``5_0`` (as fifty)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise PydanticCustomError("int_parsing", "Input should be a whole number written in digits")
    return value


QueryInt = Annotated[int, BeforeValidator(_digits_only)]


class Pagination:
    def __init__(
        self,
        limit: Annotated[QueryInt, Query(ge=1, le=500, description="Items per page")] = 50,
        offset: Annotated[QueryInt, Query(ge=0, le=10**9, description="Items to skip")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset

    def result(self, items: Sequence[T], total: int) -> Page[T]:
        """A list's answer: this page's ``items`` of ``total`` matching objects."""
        return Page[Any](items=list(items), total=total, limit=self.limit, offset=self.offset)


PageDep = Annotated[Pagination, Depends()]

_DESCRIPTIONS = {
    401: "Missing, malformed, unknown or revoked API key",
    404: "No such object (or it belongs to another owner)",
    409: "Conflicts with the object's state",
    413: "Over a size limit (the message names the setting and its value)",
    422: "Invalid input: the error's loc says where",
    429: "Too many queued or running jobs, or open event streams (see Retry-After)",
    503: "The database or the blob store is unreachable (or the store is full); retry "
    "after Retry-After seconds",
}


_HEADERS: dict[int, dict[str, Any]] = {
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given refusal codes."""
    return {
        code: {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS[code],
            **({"headers": _HEADERS[code]} if code in _HEADERS else {}),
        }
        for code in codes
    }


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Like :func:`errors`, for operations whose success is not JSON (errors still are)."""
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "content": {"application/json": {"schema": schema}},
            **({"headers": _HEADERS[code]} if code in _HEADERS else {}),
        }
        for code in codes
    }
