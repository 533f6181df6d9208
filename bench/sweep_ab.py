"""Two versions of Backprop side by side on bench/sweep.py's digits grid and halving: a
paired comparison for a change to the sweep path, whose effect (5-10 %) is smaller than
how much this machine's speed drifts between one run of bench/sweep.py and the next.

Both services run at once (2 workers each, one BLAS thread per worker), each from its own
source tree (``PYTHONPATH``; the venv's packages are shared); one idles while the other
runs a grid sweep and then a halving sweep, and the order of the two alternates from
round to round, so both see the same drift. Prints each round's times and, per tree, the
median grid / halving ratio and times. Times are each sweep's own ``finished_at`` minus
the moment before its POST, as in bench/sweep.py.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/sweep_ab.py --rounds 16 /tmp/before .
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import sweep  # noqa: E402

HALVING = {"name": "halving", "factor": 3, "min_epochs": 5}
POLL_SECONDS = 0.25


def timed_sweep(client: Any, dataset_id: str, strategy: dict[str, Any]) -> float:
    """Seconds from just before POST /v1/sweeps to the sweep's ``finished_at``."""
    started = time.time()
    body = sweep.sweep_body(dataset_id, strategy, sweep.EPOCHS)
    state = _service.check(client.post("/v1/sweeps", json=body), 202)
    while state["status"] in ("queued", "running"):
        time.sleep(POLL_SECONDS)
        state = _service.check(client.get(f"/v1/sweeps/{state['id']}"), 200)
    if state["status"] != "succeeded":
        raise RuntimeError(f"the sweep ended {state['status']}")
    return _service.parse_time(state["finished_at"]) - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path, help="two source trees (repository roots)")
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.trees]
    print(_service.Conditions.collect().describe())
    x, y, _, _ = sweep.digits()
    npz = sweep._service_npz(x, y)
    times: dict[Path, list[tuple[float, float]]] = {tree: [] for tree in trees}
    with contextlib.ExitStack() as stack:
        clients = {}
        for tree in trees:
            extra = {"BACKPROP_BLAS_THREADS": "1", "PYTHONPATH": str(tree)}
            service = stack.enter_context(_service.running_service(workers=2, extra_env=extra))
            client = stack.enter_context(service.client())
            dataset = _service.upload_npz(client, name="digits", npz=npz)["id"]
            timed_sweep(client, dataset, HALVING)  # warm: the first sweep loads and prepares
            clients[tree] = (client, dataset)
        for round_ in range(args.rounds):
            for tree in trees if round_ % 2 == 0 else trees[::-1]:
                client, dataset = clients[tree]
                grid = timed_sweep(client, dataset, {"name": "grid"})
                halving = timed_sweep(client, dataset, HALVING)
                times[tree].append((grid, halving))
                print(
                    f"round {round_ + 1} {tree}: grid {grid:.3f} s, halving {halving:.3f} s, "
                    f"{grid / halving:.2f}x; load {_service.load_average()}",
                    flush=True,
                )
    for tree, pairs in times.items():
        ratios = [grid / halving for grid, halving in pairs]
        print(
            f"{tree}: halving vs grid median {statistics.median(ratios):.2f}x "
            f"(rounds >= {sweep.TARGET_HALVING}x: {sum(r >= sweep.TARGET_HALVING for r in ratios)} "
            f"of {len(ratios)}); median grid {statistics.median(g for g, _ in pairs):.3f} s, "
            f"halving {statistics.median(h for _, h in pairs):.3f} s"
        )


if __name__ == "__main__":
    main()
