"""The job body's training options, built from the engine's one declaration of them.

``app.engine.options`` declares every option once (name, default, bounds, description);
this module turns each options dataclass into a pydantic model with the same fields, so
the API, the engine and the OpenAPI document agree by construction. The engine still
validates what the API accepted (and the rules that span fields, such as
min_learning_rate <= learning_rate).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.api.schemas.names import name_enum
from app.engine.optionspec import Option, Spec, options_of

M = TypeVar("M", bound=BaseModel)


class OptionsBody(BaseModel):
    """Base of every generated options model: unknown fields refused, names as strings."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)


def options_model(options: type, name: str, base: type[M]) -> type[M]:
    """A pydantic model named ``name``, derived from ``base``, with one field per option
    of the engine's options dataclass ``options``."""
    definitions: dict[str, Any] = {option.name: _field(option) for option in options_of(options)}
    return create_model(name, __base__=base, __module__=__name__, **definitions)


def _bounds(spec: Spec) -> dict[str, float | None]:
    low, high = ("gt" if spec.open_low else "ge"), ("lt" if spec.open_high else "le")
    return {low: spec.low, high: spec.high}


def _field(option: Option) -> tuple[Any, Any]:
    spec = option.spec
    if spec.kind == "nested":
        assert spec.options is not None
        model = _group_model(spec.options)
        if spec.nullable:
            return model | None, Field(default=None, description=spec.description)
        return model, Field(default_factory=model, description=spec.description)
    kind: Any
    extra: dict[str, Any] = {}
    if spec.kind == "choice":
        kind = name_enum(f"{spec.noun.capitalize()}Name", spec.choices)
    elif spec.kind == "flag":
        kind = bool
    else:
        kind = int if spec.kind == "integer" else float
        extra = _bounds(spec)
    if spec.nullable:
        kind = kind | None
    return kind, Field(default=option.default, description=spec.description, **extra)


_GROUPS: dict[type, type[OptionsBody]] = {}


def _group_model(options: type) -> type[OptionsBody]:
    """The model of a nested group, built once: OptimizerOptions -> OptimizerIn."""
    if options not in _GROUPS:
        name = options.__name__.removesuffix("Options") + "In"
        _GROUPS[options] = options_model(options, name, OptionsBody)
    return _GROUPS[options]
