"""Training data as the loop wants it: checked, encoded, split by index, with the
standardisation to apply per batch.

Order of work: x is checked (finite, (m, n[0])) and y encoded for the network's task
(labels fitted on all of y, or the given classes); the validation rows are chosen (an
explicit validation set, or a stratified random split, kept as sorted row numbers into
x); standardisation statistics are fitted on the training rows only.

Nothing here copies x: it is kept as the caller gave it (a read-only memory map, say;
only a conversion to the network dtype or to C order makes a copy) and never written.
The loop gathers the rows into buffers of its own and standardises them there
(``epochrows``, ``preprocessing.gather``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import labels, splitting
from app.engine.errors import ConfigError, DataError
from app.engine.network import Network
from app.engine.preprocessing import Standardizer, block_rows, check_features, gather

Array = npt.NDArray[np.floating[Any]]
Index = npt.NDArray[np.intp]


@dataclass(frozen=True)
class TrainingData:
    """Features, encoded targets, label map and standardisation, in the network dtype.

    x (m, n[0]) C-contiguous, never written, and y (m, n[L]): the rows trained on are
    ``train_rows`` (sorted row numbers; None: all of them). The validation rows are
    ``val_rows`` of x_val / y_val (None: all of them): for a validation split x_val is x
    itself and y_val is y; for an explicit validation set they are its own arrays; None
    without validation. The standardizer (or None) is applied to every gathered batch.
    """

    x: Array
    y: Array
    x_val: Array | None
    y_val: Array | None
    task: str
    classes: list[Any] | None
    standardizer: Standardizer | None
    train_rows: Index | None = None
    val_rows: Index | None = None

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
        why = labels.untrainable_output(task, network.output_size)
        if why is not None:
            raise ConfigError(why, ("layers", network.depth - 1, "units"))
        xs = check_features(x, network.input_size, network.dtype)
        ys, classes = labels.encode(y, task, network.output_size, network.dtype, classes)
        if ys.shape[0] != xs.shape[0]:
            raise DataError(f"y has {ys.shape[0]} rows but x has {xs.shape[0]}", ("y",))
        x_val: Array | None = None
        y_val: Array | None = None
        train: Index | None = None
        val: Index | None = None
        if validation is not None:
            x_val, y_val = _validation_set(network, validation, task, classes)
        elif validation_split > 0:
            train, val = splitting.split(
                xs.shape[0], validation_split, splitting.class_codes(ys, task), seed
            )
            x_val, y_val = xs, ys
        if fit_standardizer:
            standardizer = Standardizer.fit(xs, train)
        return cls(xs, ys, x_val, y_val, task, classes, standardizer, train, val)

    @property
    def train_count(self) -> int:
        """Rows trained on per epoch."""
        return self.x.shape[0] if self.train_rows is None else int(self.train_rows.shape[0])

    @property
    def val_count(self) -> int:
        """Validation rows (0 without validation)."""
        if self.x_val is None:
            return 0
        return self.x_val.shape[0] if self.val_rows is None else int(self.val_rows.shape[0])

    def blocks(self, x: Array, rows: Index | None, buffer: Array) -> Iterator[tuple[slice, Array]]:
        """(positions, features) per block of the rows ``rows`` of x (all when None): the
        features (k, n[0]) gathered into ``buffer`` (at least k rows) and standardised;
        positions is the slice of the block among those rows."""
        m = x.shape[0] if rows is None else rows.shape[0]
        size = buffer.shape[0]
        for start in range(0, m, size):
            where = slice(start, min(start + size, m))
            yield (
                where,
                gather(x, where if rows is None else rows[where], buffer, self.standardizer),
            )

    def fingerprint(self) -> str:
        """sha256 of the training and validation rows as the network sees them
        (standardised, in row order), to recognise the same data when a run is resumed.

        The rows are hashed a block at a time, never copied whole; the digest is the one
        of the standardised arrays x[train], y[train], x_val[val], y_val[val] in turn.
        Computed once per instance (its arrays are never written), so trainers sharing
        one prepared data (a worker's trials on one dataset) hash it once.
        """
        known: str | None = self.__dict__.get("_fingerprint")
        if known is None:
            known = self._digest()
            object.__setattr__(self, "_fingerprint", known)  # a cache, not a field
        return known

    def _digest(self) -> str:
        digest = hashlib.sha256()
        parts = [(self.x, self.y, self.train_rows)]
        if self.x_val is not None and self.y_val is not None:
            parts.append((self.x_val, self.y_val, self.val_rows))
        buffer = np.empty((block_rows(self.x.shape[1]), self.x.shape[1]), dtype=self.x.dtype)
        for x, y, rows in parts:
            count = x.shape[0] if rows is None else rows.shape[0]
            digest.update(repr((count, x.shape[1])).encode())
            for _, block in self.blocks(x, rows, buffer):
                digest.update(block.reshape(-1).view(np.uint8).data)
            targets = y if rows is None else y[rows]
            digest.update(repr(targets.shape).encode())
            digest.update(np.ascontiguousarray(targets).reshape(-1).view(np.uint8).data)
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
