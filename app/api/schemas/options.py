"""The job body's training options, built from the engine's one declaration of them.

``app.engine.options`` declares every option once (name, default, bounds, description);
this module turns each options dataclass into a pydantic model with the same fields, so
the API, the engine and the OpenAPI document agree by construction. The engine still
validates what the API accepted (and the rules that span fields, such as
min_learning_rate <= learning_rate).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.api.schemas.names import name_enum
from app.engine.optionspec import Option, Spec, options_of

M = TypeVar("M", bound=BaseModel)


class OptionsBody(BaseModel):
    """Base of every generated request options model: unknown fields refused, names as
    strings. Its groups are called OptimizerIn, ScheduleIn, ..."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)
    GROUP_SUFFIX: ClassVar[str] = "In"


class OptionsRead(BaseModel):
    """Base of every generated response options model (a job's options as it reports
    them). Every field is sent, so the schema marks each required (while a request's
    defaulted fields stay optional); keys no longer declared are dropped. Its groups are
    called Optimizer, Schedule, ..."""

    model_config = ConfigDict(
        extra="ignore", use_enum_values=True, json_schema_serialization_defaults_required=True
    )
    GROUP_SUFFIX: ClassVar[str] = ""


def options_model(options: type, name: str, base: type[M]) -> type[M]:
    """A pydantic model named ``name``, derived from ``base``, with one field per option
    of the engine's options dataclass ``options``."""
    definitions: dict[str, Any] = {
        option.name: _field(option, base) for option in options_of(options)
    }
    return create_model(name, __base__=base, __module__=__name__, **definitions)


def _bounds(spec: Spec) -> dict[str, float | None]:
    low, high = ("gt" if spec.open_low else "ge"), ("lt" if spec.open_high else "le")
    return {low: spec.low, high: spec.high}


def _field(option: Option, base: type[BaseModel]) -> tuple[Any, Any]:
    spec = option.spec
    if spec.kind == "nested":
        assert spec.options is not None
        model = _group_model(spec.options, _group_base(base))
        if spec.nullable:
            return model | None, Field(default=None, description=spec.description)
        return model, Field(default_factory=model, description=spec.description)
    kind: Any
    extra: dict[str, Any] = {}
    # A request's numbers and flags are strict (5, not "5"; true, not "yes" or 1) and its
    # floats finite (NaN is refused as NaN, not as "more than the bound").
    strict = {} if issubclass(base, OptionsRead) else {"strict": True}
    if spec.kind == "choice":
        kind = name_enum(f"{spec.noun.capitalize()}Name", spec.choices)
    elif spec.kind == "flag":
        kind = bool
        extra = strict
    else:
        kind = int if spec.kind == "integer" else float
        extra = {**_bounds(spec), **strict}
        if kind is float and strict:
            extra["allow_inf_nan"] = False
    if spec.nullable:
        kind = kind | None
    return kind, Field(default=option.default, description=spec.description, **extra)


_GROUPS: dict[tuple[type, type[BaseModel]], type[BaseModel]] = {}


def _group_base(base: type[BaseModel]) -> type[OptionsBody | OptionsRead]:
    """The base of a model's nested groups: OptionsBody or OptionsRead, as the model's."""
    return OptionsRead if issubclass(base, OptionsRead) else OptionsBody


def _group_model(options: type, base: type[OptionsBody | OptionsRead]) -> type[BaseModel]:
    """The model of a nested group, built once per base: OptimizerOptions -> OptimizerIn
    (requests) or Optimizer (responses)."""
    if (options, base) not in _GROUPS:
        name = options.__name__.removesuffix("Options") + base.GROUP_SUFFIX
        _GROUPS[options, base] = options_model(options, name, base)
    return _GROUPS[options, base]
