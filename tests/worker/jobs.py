"""Small, deterministic training jobs for the worker tests (need app.engine)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.config import Settings
from app.engine.training import TrainingOptions
from app.services.sweeps import SweepSpec, TrialSpec, create_sweep
from app.storage.database import Database
from tests.queue.rows import XOR_NETWORK, add_dataset, add_jobs, add_owner

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


RATES = [0.3, 0.1, 0.03, 0.01]


def learning_rate_sweep(
    db: Database, settings: Settings, job: dict[str, Any], strategy: dict[str, Any]
) -> tuple[int, str]:
    """A new owner's sweep over RATES (SGD) on the quadrant data, scored by val_loss, with
    ``job``'s options: (owner id, sweep id)."""
    owner_id = add_owner(db)
    dataset_id = add_dataset(db, owner_id, QUADRANT_X, QUADRANT_Y)
    network = {k: NETWORK[k] for k in ("input_size", "layers", "loss", "init", "seed")}
    trials = [
        TrialSpec(
            params={"job.optimizer.learning_rate": rate},
            network=network,
            job={**job, "optimizer": {"name": "sgd", "learning_rate": rate}},
        )
        for rate in RATES
    ]
    spec = SweepSpec(
        name="s",
        dataset_id=dataset_id,
        network=network,
        job=job,
        grid={"job.optimizer.learning_rate": RATES},
        strategy=strategy,
        metric="val_loss",
        max_parallel=None,
    )
    created = create_sweep(db, settings, owner_id=owner_id, spec=spec, trials=trials)
    return owner_id, created.sweep.id
