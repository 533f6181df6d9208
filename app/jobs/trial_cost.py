"""How long a sweep's trial (or a pack of trials trained together) should take, estimated
from what is known before it runs: only to rank them, longest first (LPT scheduling: the
work that finishes alone at a sweep's end, while the other workers have nothing left, is
the short work). Used where a sweep's trials are queued (app/services/sweep_order.py) and
where a worker picks which of a sweep's queued trials to train next (app/jobs/pack_claim.py).

The unit is one parameter-sample (one weight times one row, forward and backward). An
epoch of a trial costs ``steps * (batch_size * parameters + layers * STEP_OVERHEAD)``
plus its end (the validation rows' forward pass, ~a third of a parameter-sample each, and
EPOCH_END_OVERHEAD for its metrics, history and best weights). Trials trained together in
a pack (app/engine/pack.py) share each step's fixed per-layer overhead (one NumPy call per
operation for all of them) but not its arithmetic, nor their epochs' ends. BENCHMARKS.md
§9 has the measured step times the constants were fitted to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.engine.architecture import parameter_count

# The per-layer fixed cost of one training step, in parameter-samples: ~50 us of NumPy
# call overhead per layer against ~0.2 ns per parameter-sample (digits MLPs, one thread).
STEP_OVERHEAD = 250_000
# The fixed cost of a trial's epoch end (metrics, history, best weights): ~0.25 ms; an
# epoch's end measured ~0.3 ms per trial on digits, validation pass included (§9, s22).
EPOCH_END_OVERHEAD = 5 * STEP_OVERHEAD


@dataclass(frozen=True)
class TrialCost:
    """What a trial's cost is estimated from."""

    parameters: int  # trainable scalars of its network
    layers: int  # its dense layers (the output layer included)
    batch_size: int
    epochs: int  # the epochs it has left to train (under halving: to its rung's target)
    validation_split: float = 0.0  # the share of the rows it holds out


def estimated_cost(trial: TrialCost, rows: int) -> float:
    """The trial's training cost in parameter-samples, for a dataset of ``rows`` rows."""
    return pack_cost(trial, [trial.epochs], rows)


def pack_cost(lead: TrialCost, epochs: Sequence[int], rows: int) -> float:
    """The cost of a pack of trials trained together, each as ``lead`` (one network shape,
    batch size and validation split) but for its epochs (``epochs``, one per trial): each
    step's per-layer overhead once, for as long as the longest trains; the arithmetic and
    the epochs' ends per trial."""
    validation = round(max(rows, 1) * lead.validation_split)
    training = max(rows - validation, 1)
    batch = max(1, min(lead.batch_size, training))
    steps = math.ceil(training / batch)
    shared = steps * lead.layers * STEP_OVERHEAD
    own = steps * batch * lead.parameters + validation * lead.parameters / 3 + EPOCH_END_OVERHEAD
    return max(epochs, default=0) * shared + sum(epochs) * own


def trial_of(
    config: dict[str, Any], options: dict[str, Any], epochs: int, parameters: int | None = None
) -> TrialCost:
    """The cost inputs of a trial from its network config and (normalised) training
    options, training ``epochs`` more epochs; ``parameters`` counted from the config's
    dense layers unless given."""
    return TrialCost(
        parameters=dense_parameters(config) if parameters is None else parameters,
        layers=len(config.get("layers") or []) or 1,
        batch_size=int(options.get("batch_size") or 1),
        epochs=max(epochs, 0),
        validation_split=float(options.get("validation_split") or 0.0),
    )


def dense_parameters(config: dict[str, Any]) -> int:
    """The weights and biases of a network config's dense layers (``input_size``, then
    each layer's ``units``)."""
    units = [int(layer["units"]) for layer in config.get("layers") or []]
    return parameter_count(int(config.get("input_size", 0)), units)
