"""The order a sweep's trials are queued in: the longest first (LPT scheduling).

Workers claim a sweep's trials oldest first (app/jobs/fairness.py), and a sweep's trials
are queued one after the other in :func:`app.services.sweeps.create_sweep`, so the order
they are queued in is the order they run in, one trial at a time; a worker that trains
several together takes the longest pack of them (app/jobs/pack_claim.py), this order
deciding among equals. Longest first means the trials that finish alone at the end,
while the other workers have nothing left, are the short ones (the longest-processing-
time rule: within 4/3 of the best schedule). The trials keep their ``trial_index`` (their
place in the grid); only the queue order changes. Under halving a promoted trial keeps
its place, so each rung runs its longest trials first too.

A trial's cost is estimated by app/jobs/trial_cost.py (its remaining epochs, steps, network
size, validation rows); it only has to rank trials.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.jobs.trial_cost import TrialCost, estimated_cost


def queue_order(trials: Sequence[TrialCost], rows: int) -> list[int]:
    """The trials' indexes, costliest first; equal costs keep their grid order."""
    costs = [estimated_cost(trial, rows) for trial in trials]
    return sorted(range(len(trials)), key=lambda index: (-costs[index], index))
