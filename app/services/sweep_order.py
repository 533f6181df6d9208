"""The order a sweep's trials are queued in: the longest first (LPT scheduling).

Workers claim a sweep's trials oldest first (app/jobs/fairness.py), and a sweep's trials
are queued one after the other in :func:`app.services.sweeps.create_sweep`, so the order
they are queued in is the order they run in. Longest first means the trials that finish
alone at the end, while the other workers have nothing left, are the short ones (the
longest-processing-time rule: within 4/3 of the best schedule). The trials keep their
``trial_index`` (their place in the grid); only the queue order changes. Under halving a
promoted trial keeps its place, so each rung runs its longest trials first too.

A trial's cost is estimated from what is known before it runs, in units of one
parameter-sample (one weight times one row, forward and backward):
``epochs * steps_per_epoch * (batch_size * parameters + layers * STEP_OVERHEAD)``, where
``STEP_OVERHEAD`` stands for the fixed per-layer cost of a step (NumPy calls, optimiser
updates), which dominates small networks at small batches. The estimate only has to rank
trials; BENCHMARKS.md §9 has the measured step times it was fitted to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The per-layer fixed cost of one training step, in parameter-samples: ~50 us of NumPy
# call overhead per layer against ~0.2 ns per parameter-sample (digits MLPs, one thread).
STEP_OVERHEAD = 250_000


@dataclass(frozen=True)
class TrialCost:
    """What a trial's cost is estimated from."""

    parameters: int  # trainable scalars of its network
    layers: int  # its dense layers (the output layer included)
    batch_size: int
    epochs: int  # the epochs it is queued to train (under halving: the first rung's)


def estimated_cost(trial: TrialCost, rows: int) -> float:
    """The trial's training cost in parameter-samples, for a dataset of ``rows`` rows."""
    batch = max(1, min(trial.batch_size, rows))
    steps = math.ceil(max(rows, 1) / batch)
    return trial.epochs * steps * (batch * trial.parameters + trial.layers * STEP_OVERHEAD)


def queue_order(trials: Sequence[TrialCost], rows: int) -> list[int]:
    """The trials' indexes, costliest first; equal costs keep their grid order."""
    costs = [estimated_cost(trial, rows) for trial in trials]
    return sorted(range(len(trials)), key=lambda index: (-costs[index], index))


def trial_cost(
    config: dict[str, Any], parameters: int, options: dict[str, Any], epochs: int
) -> TrialCost:
    """The cost inputs of a trial from its network config (``layers``) and options."""
    return TrialCost(
        parameters=parameters,
        layers=len(config.get("layers") or []) or 1,
        batch_size=int(options.get("batch_size") or 1),
        epochs=epochs,
    )
