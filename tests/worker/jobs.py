"""Small, deterministic training jobs for the worker tests (need app.engine)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.engine.training import TrainingOptions
from app.storage.database import Database
from tests.queue.rows import XOR_NETWORK, add_jobs

# 200 points, label = same sign of both coordinates (XOR of quadrants): a few ms an epoch.
_rng = np.random.default_rng(7)
QUADRANT_X = _rng.normal(size=(200, 2)).astype(np.float32)
QUADRANT_Y = (QUADRANT_X[:, 0] * QUADRANT_X[:, 1] > 0).astype(np.int64)
NETWORK: dict[str, Any] = {
    **XOR_NETWORK,
    "layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "seed": 3,
}


def options(epochs: int, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"epochs": epochs, "batch_size": 8, "validation_split": 0.2, "seed": 1}
    spec.update(overrides)
    return TrainingOptions.from_dict(spec).to_dict()


def add_training_jobs(
    db: Database, count: int = 1, *, epochs: int = 5, owner: str = "alice", **overrides: Any
) -> list[str]:
    """``count`` identical queued jobs on the quadrant data."""
    return add_jobs(
        db,
        count,
        options=options(epochs, **overrides),
        network=NETWORK,
        x=QUADRANT_X,
        y=QUADRANT_Y,
        owner=owner,
    )
