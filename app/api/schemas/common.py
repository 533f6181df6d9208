"""Shapes shared by every resource: errors, pages, label scalars."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)
from pydantic_core import PydanticCustomError

from app.engine.labels import MAX_LABEL_CHARS
from app.services.text import has_control_character

T = TypeVar("T")

# A class label: any JSON scalar. Strict, so "1" stays a string and true stays a bool.
Label = (
    StrictBool | StrictInt | StrictFloat | Annotated[StrictStr, Field(max_length=MAX_LABEL_CHARS)]
)

NO_NUL = r"^[^\x00]*$"  # an id filter: no id holds a NUL (PostgreSQL's text refuses one)


def printable(value: str) -> str:
    """``value`` unless it holds a control character (NUL, tab, newline, ...: a name is one
    line of text; PostgreSQL's text columns refuse NUL)."""
    if has_control_character(value):
        raise PydanticCustomError(
            "control_character", "a name cannot hold control characters (NUL, tab, newline)"
        )
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(printable)]

# A number in a body: a JSON integer or float, never a string ("1" would otherwise be read
# as 1.0, and " 1_0 " as 10) nor a boolean.
Number = Annotated[float, Field(strict=True)]


# The refusal codes the service writes itself (ErrorItem.type), with their status. Body
# and parameter validation adds pydantic's own codes (missing, int_parsing, too_short, ...:
# https://docs.pydantic.dev/latest/errors/validation_errors/), so the field is a string
# documented with this list rather than a closed enum.
ERROR_TYPES = {
    "unauthorized": "401: missing, malformed, unknown or revoked API key",
    "not_found": "404: no such object (or another owner's)",
    "conflict": "409: the object's state forbids it",
    "in_use": "409: a queued or running job uses it",
    "job_finished": "409: the job has already finished",
    "job_active": "409: the prediction run or evaluation is queued or running: cancel it first",
    "not_finished": "409: the prediction run has not succeeded (yet): no outputs to download",
    "model_deleted": "409: the prediction run's model was deleted; its labels are gone",
    "limit_exceeded": "413 (or 422): over a configured limit; the message names it",
    "too_many_jobs": "429: too many queued or running jobs; see Retry-After",
    "too_many_streams": "429: too many open event streams; see Retry-After",
    "timeout": "408: the body did not arrive in time",
    "out_of_memory": "503: the server ran short of memory for this request; see Retry-After",
    "store_unavailable": "503: the blob store (files or S3) cannot be reached; see Retry-After",
    "database_unavailable": "503: the database is restarting or cannot be reached; see Retry-After",
    "blob_missing": "409: a stored payload (named by its SHA-256) is missing from the store",
    "blob_corrupt": "409: a stored payload does not match its SHA-256",
    "value_error": "422: a value the engine or service refuses",
    "shape_mismatch": "422: the data's width does not fit the network",
    "input_width": "422: the evaluation data's width does not fit the model",
    "labels_mismatch": "422: the labels do not fit the network's loss or output",
    "json_invalid": "422: the body is not JSON",
    "control_character": "422: a name holds a control character (NUL, tab, newline)",
    "label_type": "422: a label that is not a string, a number or true/false",
    "label_nul": "422: a label with a NUL character",
    "label_int_range": "422: an integer label beyond 64 bits",
    "string_too_long": "422: a label longer than 1000 characters (as pydantic says it)",
    "grid_values": "422: a sweep's grid value that is neither a list nor a distribution",
    "grid_alternatives": "422: a sweep's grid path with no or over 1000 alternatives",
    "extra_forbidden": "422: a field the operation does not take (as pydantic says it)",
    "float_type": "422: a value that must be a number is not (a string, say)",
    "int_parsing": "422: a query's whole number not written in plain digits (5.0, +5, 5_0)",
    "too_deep": "422: the body's JSON is nested too deeply",
    "json_too_deep": "422: a JSON form field is nested too deeply",
    "body_invalid": "422: the body cannot be parsed",
    "multipart": "422: the form body cannot be parsed",
    "content_type": "422: the body's Content-Type is not one the operation takes",
    "duplicate_part": "422: a form field sent more than once (an upload's file, say)",
    "npy_invalid": "422: the .npy body is not a 2-D numeric array",
    "non_finite_output": "422: the model's output is NaN or infinite for these rows",
    "scores_overflow": "422: a regression score overflows float64 (targets too large)",
    "not_exportable": "422: the model cannot be written in the asked export format",
    "invalid": "400: any other refusal",
    "http_error": "other HTTP errors (405, ...)",
}


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. ['body', 'x', 3] or ['path', 'id']")
    msg: str = Field(description="What went wrong, for a person")
    type: str = Field(
        description="What went wrong, for a program. The service's codes: "
        + "; ".join(f"`{code}` ({meaning})" for code, meaning in ERROR_TYPES.items())
        + ". Request validation adds pydantic's codes (missing, int_parsing, too_short, ...).",
        examples=["not_found", "limit_exceeded", "missing"],
    )


class ErrorResponse(BaseModel):
    """Every refusal (4xx) has this body."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "loc": ["path", "dataset_id"],
                            "msg": "dataset not found",
                            "type": "not_found",
                        }
                    ]
                }
            ]
        }
    )

    detail: list[ErrorItem]


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first."""

    items: list[T]
    total: int = Field(description="Number of matching objects on all pages")
    limit: int
    offset: int


def openapi_examples(model: type[BaseModel]) -> dict[str, Any]:
    """The model's first schema example as a request-body example (Swagger pre-fills it)."""
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict), model
    examples = extra["examples"]
    assert isinstance(examples, list)
    return {"example": {"summary": f"A {model.__name__}", "value": examples[0]}}
