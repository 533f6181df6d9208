"""tables.Model verbs: read, list, delete, export weights, import weights."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import or_

from app.config import Settings
from app.engine.architecture import parameter_count
from app.engine.errors import EngineError
from app.engine.model import Model
from app.services.errors import Invalid, invalid_at
from app.services.jsoncodec import nesting_depth
from app.services.model_cache import ModelCache
from app.services.networks import check_layer_units, check_parameter_limit
from app.services.ownership import get_owned, page, refuse_while_in_use
from app.services.quota import check_owner_bytes
from app.storage import tables
from app.storage.blobs import BlobStore, read_verified
from app.storage.database import Database
from app.storage.tables import Job

PATH_LOC = ("path", "model_id")
# A model config nests four levels (config.network.layers[i]); the limit leaves room and
# keeps a recursive parser or comparison far from the interpreter's stack limit.
MAX_CONFIG_DEPTH = 32


def architecture_size(config: dict[str, Any]) -> int:
    """Parameter count of a model config's network."""
    network = config["network"]
    return parameter_count(
        int(network["input_size"]), [int(layer["units"]) for layer in network["layers"]]
    )


def get_model(db: Database, *, owner_id: int, model_id: str) -> tables.Model:
    with db.read_session() as session:
        return get_owned(session, tables.Model, model_id, owner_id=owner_id, loc=PATH_LOC)


def list_models(
    db: Database,
    *,
    owner_id: int,
    network_id: str | None = None,
    dataset_id: str | None = None,
    limit: int,
    offset: int,
) -> tuple[list[tables.Model], int]:
    """A page of the owner's models, optionally only those of ``network_id`` or trained
    on ``dataset_id`` (imported models have no dataset)."""
    where = []
    if network_id is not None:
        where.append(tables.Model.network_id == network_id)
    if dataset_id is not None:
        where.append(tables.Model.dataset_id == dataset_id)
    with db.read_session() as session:
        return page(
            session, tables.Model, owner_id=owner_id, limit=limit, offset=offset, where=where
        )


def model_weights(db: Database, blobs: BlobStore, *, owner_id: int, model_id: str) -> bytes:
    """The engine's npz export of the model (W1..WL, b1..bL, x_mean/x_std if standardised),
    read from the blob store and checked against its hash."""
    row = get_model(db, owner_id=owner_id, model_id=model_id)
    return read_verified(blobs, row.weights_sha256)


def delete_model(db: Database, cache: ModelCache, *, owner_id: int, model_id: str) -> None:
    """Delete (and forget it in this process's cache); 409 while a job starts from it or
    a prediction run or evaluation job reads it."""
    with db.session() as session:
        row = get_owned(
            session, tables.Model, model_id, owner_id=owner_id, loc=PATH_LOC, for_update=True
        )
        # Training from it, or a prediction run / evaluation reading it.
        uses = or_(Job.init_model_id == model_id, Job.model_id == model_id)
        refuse_while_in_use(session, uses, what="with this model", loc=PATH_LOC)
        session.delete(row)
    cache.drop(model_id)


def _import_config(network: tables.Network, config_text: str | None) -> dict[str, Any] | None:
    if config_text is None or config_text.strip() == "":
        return None
    loc = ("body", "config")
    depth = nesting_depth(config_text)
    if depth > MAX_CONFIG_DEPTH:
        raise Invalid(
            f"config nests {depth} levels deep, more than the {MAX_CONFIG_DEPTH} allowed",
            loc,
            error_type="json_too_deep",
        )
    try:
        config = json.loads(config_text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an int of 4300+ digits
        raise Invalid(f"config is not JSON: {exc}", loc) from None
    if not isinstance(config, dict) or not isinstance(config.get("network"), dict):
        raise Invalid(
            "config must be a JSON object with a 'network' object "
            "(as in GET /v1/models/{id} 'config')",
            loc,
        )
    theirs, ours = config["network"], network.config
    for key in ("input_size", "layers", "loss"):
        if theirs.get(key) != ours.get(key):
            raise Invalid(
                f"config.network.{key} differs from the network's: "
                f"{theirs.get(key)!r} != {ours.get(key)!r}",
                (*loc, "network", key),
            )
    return config


def import_model(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    *,
    owner_id: int,
    network_id: str,
    data: bytes,
    config_text: str | None,
) -> tables.Model:
    """A model from an npz in the export format, for one of the caller's networks."""
    with db.read_session() as session:
        network = get_owned(
            session, tables.Network, network_id, owner_id=owner_id, loc=("body", "network_id")
        )
    check_parameter_limit(network.parameter_count, settings, ("body", "network_id"))
    spec = network.config
    units = [int(layer["units"]) for layer in spec["layers"]]
    check_layer_units(int(spec["input_size"]), units, settings, ("body", "network_id"))
    config = _import_config(network, config_text)
    if config is not None:
        with invalid_at(("body", "config"), EngineError):  # the config's own faults
            Model.check_export_config(config)
    with invalid_at(("body", "file"), EngineError):
        # The engine reads each array's header (dtype, shape) and checks it against the
        # architecture before reading any data; nothing is unpickled.
        if config is None:
            model = Model.from_weights(network.config, data)
        else:
            model = Model.from_export(data, config)
    weights = blobs.put_bytes(model.export_npz())
    row = tables.Model(
        owner_id=owner_id,
        job_id=None,
        network_id=network.id,
        config=model.get_config(),
        weights_sha256=weights.sha256,
        weights_size=weights.size,
        metrics=None,
    )
    with db.session() as session:
        check_owner_bytes(
            session, settings, owner_id=owner_id, adding=weights.size, loc=("body", "file")
        )
        session.add(row)
    return row
