"""A sweep's trials are queued, so claimed, longest first (app/services/sweep_order.py,
the estimate in app/jobs/trial_cost.py): the trials that finish alone at the end of a
sweep are its short ones. Each keeps its grid index. (Packs: tests/api/test_sweep_packs.py.)"""

from __future__ import annotations

from app.jobs import queue
from app.jobs.trial_cost import TrialCost, estimated_cost, pack_cost
from app.services.sweep_order import queue_order
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.sweeps import create, make_data, sweep_body

WIDE = [{"units": 32, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
DEEP = [
    {"units": 16, "activation": "tanh"},
    {"units": 16, "activation": "tanh"},
    {"units": 1, "activation": "sigmoid"},
]
NARROW = [{"units": 2, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]


def test_costs_grow_with_parameters_epochs_layers_and_smaller_batches() -> None:
    base = TrialCost(parameters=1000, layers=2, batch_size=32, epochs=10)
    cost = estimated_cost(base, rows=1000)
    assert estimated_cost(TrialCost(2000, 2, 32, 10), 1000) > cost
    assert estimated_cost(TrialCost(1000, 2, 32, 20), 1000) == 2 * cost
    assert estimated_cost(TrialCost(1000, 3, 32, 10), 1000) > cost
    assert estimated_cost(TrialCost(1000, 2, 8, 10), 1000) > cost  # more steps, each cheap
    # a batch larger than the dataset is one step of all its rows
    assert estimated_cost(TrialCost(1000, 2, 5000, 10), 100) == estimated_cost(
        TrialCost(1000, 2, 100, 10), 100
    )


def test_a_pack_shares_each_steps_overhead_but_not_its_arithmetic() -> None:
    trial = TrialCost(parameters=1000, layers=2, batch_size=32, epochs=10)
    alone = estimated_cost(trial, rows=1000)
    assert alone < pack_cost(trial, [10, 10, 10], 1000) < 3 * alone
    # The shared overhead lasts as long as the longest trial: a trial added to a pack
    # costs its own part only, whether its partner trains as long as it or longer.
    assert pack_cost(trial, [10, 20], 1000) == pack_cost(trial, [20, 10], 1000)
    added = pack_cost(trial, [10, 20], 1000) - pack_cost(trial, [20], 1000)
    assert added == pack_cost(trial, [10, 10], 1000) - alone
    # held-out rows are not trained on: fewer steps, each epoch ending with their pass
    held_out = TrialCost(1000, 2, 32, 10, validation_split=0.5)
    assert estimated_cost(held_out, 1000) < alone


def test_queue_order_is_costliest_first_and_stable() -> None:
    small, big = TrialCost(100, 2, 32, 5), TrialCost(5000, 3, 32, 5)
    assert queue_order([small, big, small, big], rows=500) == [1, 3, 0, 2]
    assert queue_order([small, small, small], rows=500) == [0, 1, 2]


def test_trials_are_claimed_longest_first(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    grid = {"network.layers": [NARROW, WIDE, DEEP], "job.epochs": [2, 6]}
    sweep = create(client, sweep_body(data, grid=grid))
    by_job = {trial["job_id"]: trial for trial in sweep["trials"]}
    assert sorted(trial["index"] for trial in by_job.values()) == list(range(6))
    claimed = []
    while (claim := queue.claim_next(db, worker_id="w", lease_seconds=30)) is not None:
        claimed.append(by_job[claim.job_id])
    assert len(claimed) == 6
    # 6 epochs before 2 of the same network; among equal epochs, the biggest network first
    # (WIDE: 32*(2+1) + 33 = 129 parameters; DEEP: 48 + 272 + 17 = 337 over 3 layers).
    order = [
        (trial["params"]["job.epochs"], len(trial["params"]["network.layers"])) for trial in claimed
    ]
    assert order[0] == (6, 3) and order[-1] == (2, 2)
    epochs = [trial["params"]["job.epochs"] for trial in claimed]
    assert epochs == sorted(epochs, reverse=True)
    narrow_last = [trial["params"]["network.layers"] == NARROW for trial in claimed]
    assert narrow_last[2] and narrow_last[5]
