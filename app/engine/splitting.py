"""The validation split: shuffled, and stratified by class for classifiers.

round(fraction·m) rows (at least 1) go to validation. For classifiers each class gives
its share — the largest-remainder rounding of fraction·count over the classes — so
class proportions are the same in both parts; for regression the rows are a plain random
sample. Everything is drawn from ``numpy.random.default_rng(seed)``. Both index arrays
come back sorted, so the training rows keep their original relative order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.errors import DataError

Index = npt.NDArray[np.intp]


def class_codes(y: npt.NDArray[np.floating[Any]], task: str) -> npt.NDArray[np.intp] | None:
    """Class index per row of encoded targets y (m, k); None for regression."""
    if task == "regression":
        return None
    if y.shape[1] == 1:
        return np.asarray(y[:, 0] > 0.5, dtype=np.intp)
    return np.asarray(np.argmax(y, axis=1), dtype=np.intp)


def validation_rows(m: int, fraction: float) -> int:
    """How many of m rows a split of ``fraction`` (> 0) validates on; DataError when that
    leaves none to train on."""
    n_val = max(1, round(fraction * m))
    if n_val >= m:
        raise DataError(
            f"validation_split {fraction} of {m} row(s) leaves no rows to train on; "
            "use a smaller split or more data",
            ("validation_split",),
        )
    return n_val


def split(
    m: int, fraction: float, codes: npt.NDArray[np.intp] | None, seed: int
) -> tuple[Index, Index]:
    """(train rows, validation rows) for m rows; DataError if either part would be empty."""
    n_val = validation_rows(m, fraction)
    rng = np.random.default_rng(seed)
    if codes is None:
        chosen = rng.permutation(m)[:n_val]
    else:
        classes, counts = np.unique(codes, return_counts=True)
        quotas = _largest_remainder(counts.astype(np.float64) * (n_val / m), n_val)
        chosen = np.concatenate(
            [
                rng.permutation(np.flatnonzero(codes == c))[:q]
                for c, q in zip(classes, quotas, strict=True)
            ]
        )
    is_val = np.zeros(m, dtype=bool)
    is_val[chosen] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _largest_remainder(shares: npt.NDArray[np.float64], total: int) -> list[int]:
    """Integers close to ``shares`` that add up to ``total``."""
    floors = np.floor(shares).astype(int)
    order = np.argsort(-(shares - floors), kind="stable")
    floors[order[: total - int(floors.sum())]] += 1
    return [int(q) for q in floors]
