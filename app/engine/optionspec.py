"""How an option is declared once: its kind, bounds and description beside its default.

Each field of the option dataclasses in ``options.py`` is made by one of ``number``,
``integer``, ``flag``, ``choice`` or ``nested``: a ``dataclasses.field`` holding the
default, with a ``Spec`` in its metadata. The dataclasses validate themselves from the
specs, and the HTTP schema (``app.api.schemas.options``) is built from the same specs, so
a name, default, bound or description cannot differ between the two.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Literal, NamedTuple

from app.engine.errors import ConfigError

Kind = Literal["number", "integer", "flag", "choice", "nested"]
Loc = tuple[str | int, ...]
SPEC = "backprop.option"


@dataclass(frozen=True)
class Spec:
    """What values an option takes. Bounds are inclusive unless ``open_low``/``open_high``;
    ``nullable`` options also take None (meaning off); ``noun`` names a choice's kind
    ("optimizer") in errors; ``options`` is the dataclass of a nested group."""

    kind: Kind
    description: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()
    noun: str = ""
    options: type[Any] | None = None

    def check(self, value: Any, loc: Loc) -> None:
        """ConfigError at ``loc`` unless ``value`` is one this option takes."""
        if value is None and self.nullable:
            return
        if self.kind == "number":
            self._number(value, loc)
        elif self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int) or not self._inside(value):
                raise ConfigError(
                    f"must be an integer from {self.low:.0f} to {self.high:.0f}, got {value!r}",
                    loc,
                )
        elif self.kind == "flag":
            if not isinstance(value, bool):
                raise ConfigError(f"must be true or false, got {value!r}", loc)
        elif self.kind == "choice":
            if value not in self.choices:
                valid = ", ".join(self.choices)
                raise ConfigError(f"unknown {self.noun} {value!r}; valid: {valid}", loc)
        elif self.options is not None and not isinstance(value, self.options):
            raise ConfigError(f"must be {self.options.__name__}", loc)

    def _number(self, value: Any, loc: Loc) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"must be a finite number, got {value!r}", loc)
        if not self._inside(value):
            lo = f"{'>' if self.open_low else '>='} {self.low:g}"
            hi = f"{'<' if self.open_high else '<='} {self.high:g}"
            raise ConfigError(f"must be {lo} and {hi}, got {value!r}", loc)

    def _inside(self, value: float) -> bool:
        assert self.low is not None and self.high is not None
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below


class Option(NamedTuple):
    """One declared option: its name, its spec, and its default (None for a nested group
    that defaults to its own defaults)."""

    name: str
    spec: Spec
    default: Any


def _declare(default: Any, spec: Spec) -> Any:
    return field(default=default, metadata={SPEC: spec})


def number(
    default: float | None,
    description: str,
    *,
    low: float,
    high: float,
    open_low: bool = False,
    open_high: bool = False,
    nullable: bool = False,
) -> Any:
    """A finite real number in [low, high] (either end open if asked)."""
    spec = Spec("number", description, low, high, open_low, open_high, nullable)
    return _declare(default, spec)


def integer(default: int, description: str, *, low: int, high: int) -> Any:
    """An integer from low to high inclusive (booleans refused)."""
    return _declare(default, Spec("integer", description, low, high))


def flag(default: bool, description: str) -> Any:
    """true or false."""
    return _declare(default, Spec("flag", description))


def choice(default: str, description: str, *, choices: tuple[str, ...], noun: str) -> Any:
    """One of ``choices`` (the keys of one of the engine's registries)."""
    return _declare(default, Spec("choice", description, choices=choices, noun=noun))


def nested(options: type, description: str, *, nullable: bool = False) -> Any:
    """A group of options of its own; None (off) when nullable, else its defaults."""
    spec = Spec("nested", description, nullable=nullable, options=options)
    if nullable:
        return _declare(None, spec)
    return field(default_factory=options, metadata={SPEC: spec})


def spec_of(declared: Field[Any]) -> Spec:
    spec = declared.metadata.get(SPEC)
    if not isinstance(spec, Spec):
        raise TypeError(f"option {declared.name!r} is not declared with an optionspec helper")
    return spec


def options_of(cls: type) -> list[Option]:
    """Every option of an options dataclass, in declaration order."""
    return [
        Option(f.name, spec_of(f), None if f.default is MISSING else f.default) for f in fields(cls)
    ]
