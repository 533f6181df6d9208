"""Names from a fixed set, as enums: each is a named schema in OpenAPI, so Swagger UI
offers the choices. The values are the keys of the engine's registries, never a copy.

Models that use them set ``use_enum_values``, so a validated field holds the plain name.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import cast

from app.engine.activations import ACTIVATIONS
from app.engine.datasets import GENERATORS
from app.engine.initializers import CHOICES as INIT_CHOICES
from app.engine.losses import LOSSES


@cache
def name_enum(name: str, values: tuple[str, ...]) -> type[StrEnum]:
    """A str enum called ``name`` whose members are ``values`` (member name = value)."""
    return cast("type[StrEnum]", StrEnum(name, [(value, value) for value in values]))


# mypy cannot list members computed from a table, hence the ignores; it still knows each
# is a StrEnum, which is all the schemas need.
ActivationName = StrEnum("ActivationName", [(n, n) for n in ACTIVATIONS])  # type: ignore[misc]
LossName = StrEnum("LossName", [(n, n) for n in LOSSES])  # type: ignore[misc]
InitName = StrEnum("InitName", [(n, n) for n in INIT_CHOICES])  # type: ignore[misc]
DatasetKind = StrEnum("DatasetKind", [(n, n) for n in GENERATORS])  # type: ignore[misc]
