"""Does a dataset fit a network? Checked at submit so a job fails there, not in a worker.

Uses only the stored metadata (label kind, classes, widths), never the arrays, and
mirrors the engine's rules (app.engine.labels.encode): the loss decides the task;
binary wants exactly two classes and one sigmoid unit, multiclass one softmax unit per
class (or probability rows), regression numbers with one unit per target column.
"""

from __future__ import annotations

from typing import Any

from app.engine.losses import LOSSES
from app.services.errors import Invalid
from app.storage.tables import Dataset

DATASET_LOC = ("body", "dataset_id")


def loss_task(loss: str) -> str:
    """binary | multiclass | regression: what a loss trains the output layer for."""
    spec = LOSSES.get(loss)
    return spec.task if spec is not None else "regression"


def _mismatch(msg: str) -> Invalid:
    return Invalid(msg, DATASET_LOC, error_type="labels_mismatch")


def check_labels_fit(
    network_config: dict[str, Any], dataset: Dataset, init_classes: list[Any] | None = None
) -> None:
    """Refuse (422, loc body.dataset_id) a dataset whose x or y the network cannot train on.

    ``init_classes``: the classes of the model a job starts from (they fix the label map).
    """
    input_size = int(network_config["input_size"])
    if dataset.n_features != input_size:
        raise Invalid(
            f"the dataset has {dataset.n_features} features but the network's input_size is "
            f"{input_size}",
            DATASET_LOC,
            error_type="shape_mismatch",
        )
    loss = str(network_config["loss"])
    task = loss_task(loss)
    outputs = int(network_config["layers"][-1]["units"])
    kind = dataset.label_kind
    classes = dataset.classes or []
    if task == "regression":
        if kind == "categorical" and any(isinstance(c, str) for c in classes):
            raise _mismatch(f"loss {loss!r} is for regression, but the labels are strings")
        if dataset.n_targets != outputs:
            raise _mismatch(
                f"the dataset has {dataset.n_targets} target column(s) but the output layer "
                f"has {outputs} unit(s)"
            )
        return
    if task == "multiclass" and kind == "multi_output" and dataset.n_targets == outputs:
        return  # rows of class probabilities, one column per softmax unit
    if kind != "categorical":
        raise _mismatch(f"loss {loss!r} needs class labels, but the dataset's labels are {kind}")
    wanted = 2 if task == "binary" else outputs
    count = len(init_classes) if init_classes is not None else len(classes)
    if count != wanted:
        layer = "one sigmoid unit (binary)" if task == "binary" else f"{outputs} softmax units"
        raise _mismatch(
            f"the dataset has {len(classes)} classes {classes[:10]} but the output layer, "
            f"{layer}, needs exactly {wanted}"
        )


def check_init_model(
    network_config: dict[str, Any], model_config: dict[str, Any], dataset: Dataset
) -> None:
    """The init model must have the network's shapes, and know every class of the dataset."""
    loc = ("body", "init_model_id")
    theirs = model_config.get("network", {})
    shape = (network_config["input_size"], [layer["units"] for layer in network_config["layers"]])
    other = (theirs.get("input_size"), [layer.get("units") for layer in theirs.get("layers", [])])
    if shape != other:
        raise Invalid(
            f"the init model's layer sizes {other} differ from the network's {shape}",
            loc,
            error_type="shape_mismatch",
        )
    known = model_config.get("classes")
    if known is not None and dataset.classes is not None:
        unknown = [c for c in dataset.classes if c not in known]
        if unknown:
            raise Invalid(
                f"the dataset has classes the init model does not know: {unknown[:10]}",
                loc,
                error_type="labels_mismatch",
            )
