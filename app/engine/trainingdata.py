"""Training data as the loop wants it: checked, encoded, split and standardised.

Order of work: x is checked (finite, (m, n[0])) and y encoded for the network's task
(labels fitted on all of y, or the given classes); the validation rows are taken out
(an explicit validation set, or a stratified random split); standardisation statistics
are fitted on the training rows only and applied to both parts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import labels, splitting
from app.engine.errors import ConfigError, DataError
from app.engine.network import Network
from app.engine.preprocessing import Standardizer, check_features

Array = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class TrainingData:
    """x (n, n[0]) / y (n, n[L]) training rows, optional validation rows, label map and
    standardisation — everything in the network dtype, C-contiguous."""

    x: Array
    y: Array
    x_val: Array | None
    y_val: Array | None
    task: str
    classes: list[Any] | None
    standardizer: Standardizer | None

    @classmethod
    def prepare(
        cls,
        network: Network,
        x: Any,
        y: Any,
        *,
        validation_split: float,
        seed: int,
        validation: tuple[Any, Any] | None = None,
        classes: list[Any] | None = None,
        standardizer: Standardizer | None = None,
        fit_standardizer: bool = False,
    ) -> TrainingData:
        """Check and arrange the data; DataError (with loc) for anything that does not fit.

        ``classes`` / ``standardizer`` fix the label order and statistics (a resumed run
        or a model being fine-tuned); otherwise they are fitted when ``fit_standardizer``.
        """
        task = labels.task_of(network.loss)
        if task == "binary" and network.output_size != 1:
            raise ConfigError(
                f"binary_crossentropy over {network.output_size} sigmoid units (multi-label) "
                "cannot be trained from labels; use 1 sigmoid unit for two classes or softmax "
                "with one unit per class",
                ("layers", network.depth - 1, "units"),
            )
        xs = check_features(x, network.input_size, network.dtype)
        owned = xs is not x  # a converted copy: the engine may overwrite it
        ys, classes = labels.encode(y, task, network.output_size, network.dtype, classes)
        if ys.shape[0] != xs.shape[0]:
            raise DataError(f"y has {ys.shape[0]} rows but x has {xs.shape[0]}", ("y",))
        x_val: Array | None = None
        y_val: Array | None = None
        if validation is not None:
            x_val, y_val = _validation_set(network, validation, task, classes)
        elif validation_split > 0:
            train, val = splitting.split(
                xs.shape[0], validation_split, splitting.class_codes(ys, task), seed
            )
            xs, x_val, ys, y_val = xs[train], xs[val], ys[train], ys[val]
            owned = True  # fancy indexing copied both parts
        if fit_standardizer:
            standardizer = Standardizer.fit(xs)
        if standardizer is not None:
            # Arrays made here are standardised in place: one copy of the data fewer at peak.
            xs = standardizer.transform(xs, out=xs if owned else None)
            if x_val is not None:
                split = validation is None  # else x_val may be the caller's array
                x_val = standardizer.transform(x_val, out=x_val if split else None)
        return cls(xs, ys, x_val, y_val, task, classes, standardizer)

    def fingerprint(self) -> str:
        """sha256 of every array, to recognise the same data when a run is resumed."""
        digest = hashlib.sha256()
        for array in (self.x, self.y, self.x_val, self.y_val):
            if array is not None:
                digest.update(repr(array.shape).encode())
                # The bytes in place (a uint8 view), not .tobytes(): that would copy all of x.
                digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
        return digest.hexdigest()


def _validation_set(
    network: Network, validation: tuple[Any, Any], task: str, classes: list[Any] | None
) -> tuple[Array, Array]:
    if not isinstance(validation, tuple | list) or len(validation) != 2:
        raise DataError("validation must be a pair (x, y)", ("validation",))
    try:
        x_val = check_features(validation[0], network.input_size, network.dtype)
        y_val, _ = labels.encode(validation[1], task, network.output_size, network.dtype, classes)
    except DataError as exc:
        raise DataError(exc.message, ("validation", *exc.loc)) from exc
    if y_val.shape[0] != x_val.shape[0]:
        raise DataError(
            f"validation y has {y_val.shape[0]} rows but x has {x_val.shape[0]}",
            ("validation", "y"),
        )
    return x_val, y_val
