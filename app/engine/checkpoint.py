"""Training state <-> bytes: one npz archive of arrays plus an embedded JSON document.

Nothing is pickled: counters and names go to JSON (``state.json``, stored as a
uint8 array), arrays stay arrays, and reading goes through ``npzio`` (headers checked,
object arrays refused). A ``Snapshot`` is everything a Trainer needs to continue:

- JSON: format / version, network config and dtype, training options, task and classes,
  the sha256 of the prepared data, the shuffling rule (a pure function of seed and
  epoch, so the seed *is* the RNG state), progress (epoch, batch position in the epoch,
  samples, best score / epoch / entry, patience counter) and optimizer counters;
- arrays: params, best_params, optimizer.* (momentum / Adam moments), x_mean / x_std
  when standardising, and the logits of the epoch's finished batches when the snapshot
  was taken mid-epoch (the epoch's training metrics are computed from them).

The shuffling rule is recorded by name, and a checkpoint resumes by the rule it names (see
``epochrows``); code older than the current rule does not read the name and would resume
any checkpoint by the rule before it: still a correct run, but not bit-identical to an
uninterrupted one, so a deployment upgrades its workers together.

The history is not in it (version 2): a checkpoint's size and cost do not grow with the
epochs done. The history is kept by whoever runs the training (the job's ``job_epochs``
rows) and handed back to ``Trainer.resume``. Version 1 checkpoints, which embedded it,
are still read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import npzio
from app.engine.epochrows import SEEDED_RULE, SHUFFLE_RULE, SHUFFLE_RULES
from app.engine.errors import ConfigError, ExportFormatError
from app.engine.loop import Progress
from app.engine.network import Network
from app.engine.options import TrainingOptions
from app.engine.preprocessing import Standardizer

FORMAT = "backprop-checkpoint"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1 embedded the history
DOCUMENT = "state.json"
Array = npt.NDArray[Any]


@dataclass
class Snapshot:
    """The complete state of a training run (see the module docstring)."""

    network: Network
    options: TrainingOptions
    task: str
    classes: list[Any] | None
    standardizer: Standardizer | None
    data_sha256: str
    progress: Progress
    optimizer_counters: dict[str, int]
    optimizer_arrays: dict[str, Array]
    best_params: Array
    logits: Array | None
    shuffle_rule: str = SHUFFLE_RULE  # how the epochs' orders follow from the seed (epochrows)


def write(snapshot: Snapshot) -> bytes:
    """npz bytes holding the snapshot."""
    network = snapshot.network
    document = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": network.dtype.name,
        "network": network.get_config(),
        "options": snapshot.options.to_dict(),
        "task": snapshot.task,
        "classes": snapshot.classes,
        "data_sha256": snapshot.data_sha256,
        "rng": {"shuffle": snapshot.shuffle_rule, "seed": snapshot.options.seed},
        "progress": snapshot.progress.to_dict(),
        "optimizer": snapshot.optimizer_counters,
    }
    arrays = {"params": network.params, "best_params": snapshot.best_params}
    arrays.update({f"optimizer.{name}": array for name, array in snapshot.optimizer_arrays.items()})
    if snapshot.standardizer is not None:
        arrays["x_mean"], arrays["x_std"] = snapshot.standardizer.mean, snapshot.standardizer.std
    if snapshot.logits is not None:
        arrays["logits"] = snapshot.logits
    return npzio.dump({**arrays, DOCUMENT: npzio.put_json(document)})


def read(data: bytes) -> Snapshot:
    """The snapshot in ``data``; ExportFormatError if it is not an intact checkpoint.

    Optimizer arrays and logits are checked later against the rebuilt trainer.
    """
    arrays = npzio.load(data, npzio.accept_any, "checkpoint")
    if DOCUMENT not in arrays:
        raise ExportFormatError("not a training checkpoint (no state.json)", ("checkpoint",))
    document = npzio.get_json(arrays.pop(DOCUMENT), DOCUMENT)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ExportFormatError("not a training checkpoint", ("checkpoint",))
    if document.get("version") not in READABLE_VERSIONS:
        raise ExportFormatError(
            f"checkpoint version {document.get('version')!r} is not supported", ("checkpoint",)
        )
    try:
        network = Network.from_config(document["network"], dtype=document["dtype"])
        options = TrainingOptions.from_dict(document["options"])
        counters = document["optimizer"]
        classes = document["classes"]
        if not isinstance(counters, dict) or not all(isinstance(v, int) for v in counters.values()):
            raise TypeError("optimizer counters")
        if classes is not None and not isinstance(classes, list):
            raise TypeError("classes")
        task, sha = str(document["task"]), str(document["data_sha256"])
        rng = document.get("rng")
        rule = rng.get("shuffle", SEEDED_RULE) if isinstance(rng, dict) else SEEDED_RULE
        if rule not in SHUFFLE_RULES:
            raise ExportFormatError(
                f"the checkpoint shuffles by an unknown rule ({rule!r})", ("checkpoint",)
            )
    except (KeyError, TypeError, ConfigError) as exc:
        raise ExportFormatError(f"the checkpoint is damaged ({exc})", ("checkpoint",)) from exc
    network.params[...] = require(arrays, "params", network.params)
    standardizer = None
    if "x_mean" in arrays:
        like = np.zeros(network.input_size, dtype=network.dtype)
        standardizer = Standardizer(require(arrays, "x_mean", like), require(arrays, "x_std", like))
    return Snapshot(
        network=network,
        options=options,
        task=task,
        classes=classes,
        standardizer=standardizer,
        data_sha256=sha,
        progress=Progress.from_dict(document.get("progress")),
        optimizer_counters=counters,
        optimizer_arrays={
            k[len("optimizer.") :]: v for k, v in arrays.items() if k.startswith("optimizer.")
        },
        best_params=require(arrays, "best_params", network.params),
        logits=arrays.get("logits"),
        shuffle_rule=rule,
    )


def require(arrays: dict[str, Array], name: str, like: Array) -> Array:
    """Array ``name`` (as stored under ``arrays``), which must match ``like``'s shape and
    dtype and be finite; ExportFormatError otherwise."""
    array = arrays.get(name)
    if array is None or array.shape != like.shape or array.dtype != like.dtype:
        raise ExportFormatError(
            f"checkpoint array {name!r} is missing or does not fit", ("checkpoint", name)
        )
    if not np.isfinite(array).all():
        raise ExportFormatError(f"checkpoint array {name!r} is not finite", ("checkpoint", name))
    return array
