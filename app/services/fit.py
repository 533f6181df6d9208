"""Does a dataset fit a network? Checked at submit so a job fails there, not in a worker.

Uses only the stored metadata (label kind, classes, widths), never the arrays. The label
rules are the engine's own (``app.engine.labels.check_fit``, which ``encode`` also
applies to the arrays when the job trains), so the two cannot disagree.
"""

from __future__ import annotations

from typing import Any

from app.engine.errors import DataError
from app.engine.labels import check_fit, task_of, untrainable_output
from app.services.errors import Invalid
from app.storage.tables import Dataset

DATASET_LOC = ("body", "dataset_id")


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
    classes = dataset.classes
    why = untrainable_output(task_of(loss), int(network_config["layers"][-1]["units"]))
    if why is not None:  # whatever the data: said at submit, not by a failed job
        raise Invalid(why, ("body", "network_id"), error_type="labels_mismatch")
    try:
        check_fit(
            task_of(loss),
            int(network_config["layers"][-1]["units"]),
            kind=dataset.label_kind,
            n_targets=dataset.n_targets,
            classes=init_classes if init_classes is not None else classes,
            text=any(isinstance(c, str) for c in classes or []),
            name="the dataset",
        )
    except DataError as exc:
        raise Invalid(
            f"{exc.message} (loss {loss})", DATASET_LOC, error_type="labels_mismatch"
        ) from exc


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
