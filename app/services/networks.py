"""tables.Network verbs: an architecture validated by the engine, stored as its config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.config import Settings
from app.engine.architecture import parameter_count
from app.engine.network import Network
from app.services.errors import LimitExceeded, Loc, invalid_at
from app.services.ownership import get_owned, page
from app.storage import tables
from app.storage.database import Database

PATH_LOC = ("path", "network_id")


def check_parameter_limit(count: int, settings: Settings, loc: Loc) -> None:
    """422 when a network has more than ``BACKPROP_MAX_PARAMETERS`` weights and biases."""
    if count > settings.max_parameters:
        raise LimitExceeded(
            "parameter count",
            count,
            setting="BACKPROP_MAX_PARAMETERS",
            limit=settings.max_parameters,
            loc=loc,
            status_code=422,
        )


def check_layer_units(input_size: int, units: Sequence[int], settings: Settings, loc: Loc) -> None:
    """422 when the input or a layer is wider than ``BACKPROP_MAX_LAYER_UNITS``: a layer's
    width sets the activation memory of every row that goes through it."""
    widths: list[tuple[Loc, int]] = [((*loc, "input_size"), input_size)]
    widths += [((*loc, "layers", i, "units"), n) for i, n in enumerate(units)]
    for at, width in widths:
        if width > settings.max_layer_units:
            raise LimitExceeded(
                "the width",
                width,
                setting="BACKPROP_MAX_LAYER_UNITS",
                limit=settings.max_layer_units,
                loc=at,
                status_code=422,
            )


def describe_network(
    settings: Settings,
    *,
    input_size: int,
    layers: Sequence[Mapping[str, Any]],
    loss: str | None,
    init: str,
    seed: int,
) -> tuple[dict[str, Any], int]:
    """(config, parameter count) of the engine's network for a spec: the limits checked
    first, then the engine's checks (its errors at ``body``), without allocating or
    initialising weights (a network or sweep stores the config; a job builds it)."""
    units = [int(layer["units"]) for layer in layers]
    check_layer_units(input_size, units, settings, ("body",))
    count = parameter_count(input_size, units)
    check_parameter_limit(count, settings, ("body", "layers"))
    with invalid_at(("body",)):
        return Network.describe(input_size, layers, loss=loss, init=init, seed=seed), count


def create_network(
    db: Database,
    settings: Settings,
    *,
    owner_id: int,
    name: str,
    input_size: int,
    layers: Sequence[Mapping[str, Any]],
    loss: str | None,
    init: str,
    seed: int,
) -> tables.Network:
    config, count = describe_network(
        settings, input_size=input_size, layers=layers, loss=loss, init=init, seed=seed
    )
    row = tables.Network(owner_id=owner_id, name=name, config=config, parameter_count=count)
    with db.session() as session:
        session.add(row)
    return row


def get_network(db: Database, *, owner_id: int, network_id: str) -> tables.Network:
    with db.read_session() as session:
        return get_owned(session, tables.Network, network_id, owner_id=owner_id, loc=PATH_LOC)


def list_networks(
    db: Database, *, owner_id: int, limit: int, offset: int
) -> tuple[list[tables.Network], int]:
    with db.read_session() as session:
        return page(session, tables.Network, owner_id=owner_id, limit=limit, offset=offset)


def delete_network(db: Database, *, owner_id: int, network_id: str) -> None:
    """Delete; jobs keep the architecture they froze at submit, models keep theirs."""
    with db.session() as session:
        session.delete(
            get_owned(session, tables.Network, network_id, owner_id=owner_id, loc=PATH_LOC)
        )
