"""Refusals raised by service functions; app.main turns each into a JSON 4xx.

Every refusal carries what went wrong (``msg``), where (``loc``, FastAPI's convention:
``("body", "x", 3)``, ``("path", "dataset_id")``) and a machine-readable ``type``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from app.engine.errors import ConfigError, EngineError

Loc = tuple[str | int, ...]


class ServiceError(Exception):
    """A 4xx refusal. Subclasses fix the status code."""

    status_code = 400
    error_type = "invalid"

    def __init__(
        self,
        msg: str,
        loc: Sequence[str | int] = (),
        *,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.loc: Loc = tuple(loc)
        self.type = error_type or self.error_type
        self.headers = headers or {}

    def detail(self) -> list[dict[str, object]]:
        return [{"loc": list(self.loc), "msg": self.msg, "type": self.type}]


class NotFound(ServiceError):
    """Unknown id, or an id that belongs to another owner (answered identically)."""

    status_code = 404
    error_type = "not_found"

    def __init__(self, what: str, loc: Sequence[str | int]) -> None:
        super().__init__(f"{what} not found", loc)


class Conflict(ServiceError):
    status_code = 409
    error_type = "conflict"


class Invalid(ServiceError):
    status_code = 422
    error_type = "value_error"


@contextmanager
def invalid_at(loc: Loc, catch: type[EngineError] = ConfigError) -> Iterator[None]:
    """Answer ``catch`` (an engine error, a refused file's included, raised inside) with a
    422 at ``loc`` followed by the error's own location, e.g. ``("body", "layers", 0,
    "activation")`` or ``("body", "file", "x")``."""
    try:
        yield
    except catch as exc:
        raise Invalid(exc.message, (*loc, *exc.loc)) from None


class LimitExceeded(ServiceError):
    """A configured limit; the message names the setting and its value."""

    status_code = 413
    error_type = "limit_exceeded"

    def __init__(
        self,
        what: str,
        value: int,
        *,
        setting: str,
        limit: int,
        loc: Sequence[str | int] = ("body",),
        status_code: int = 413,
    ) -> None:
        super().__init__(f"{what} is {value}, over the limit {setting}={limit}", loc)
        self.status_code = status_code


class TooManyJobs(ServiceError):
    status_code = 429
    error_type = "too_many_jobs"

    def __init__(self, active: int, limit: int, retry_after: int) -> None:
        super().__init__(
            f"{active} jobs are queued or running, the limit is "
            f"BACKPROP_MAX_ACTIVE_JOBS={limit}; retry when one finishes",
            ("body",),
            headers={"Retry-After": str(retry_after)},
        )
