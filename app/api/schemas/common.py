"""Shapes shared by every resource: errors, pages, label scalars."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

T = TypeVar("T")

# A class label: any JSON scalar. Strict, so "1" stays a string and true stays a bool.
Label = StrictBool | StrictInt | StrictFloat | Annotated[StrictStr, Field(max_length=1000)]

Name = Annotated[str, Field(min_length=1, max_length=200)]


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. ['body', 'x', 3] or ['path', 'id']")
    msg: str = Field(description="What went wrong, for a person")
    type: str = Field(description="What went wrong, for a program: not_found, limit_exceeded, ...")


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
