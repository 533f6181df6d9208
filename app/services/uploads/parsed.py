"""What an upload parser hands back: x already on disk, the labels in memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_LOC = ("body", "file")


@dataclass(frozen=True)
class ParsedUpload:
    x_path: Path  # a float32 (n_samples, n_features) C-order .npy file
    n_samples: int
    n_features: int
    y: np.ndarray  # (n_samples,) raw labels or (n_samples, k) targets, not yet validated
    feature_names: list[str] | None
    stats: dict[str, list[float]]  # per-feature mean / std / min / max
