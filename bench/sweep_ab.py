"""Two versions of Backprop side by side on bench/sweep.py's digits grid and halving: a
paired comparison for a change to the sweep path, whose effect (5-10 %) is smaller than
how much this machine's speed drifts between one run of bench/sweep.py and the next.

Both services run at once (2 workers each, one BLAS thread per worker), each from its own
source tree (``PYTHONPATH``; the venv's packages are shared); one idles while the other
runs a grid sweep and then a halving sweep, and the order of the two alternates from
round to round, so both see the same drift. Prints each round's times and, per tree, the
median grid / halving ratio and times; then, per round, the second tree's time and its
workers' CPU against the first's (new / old - 1), whose median over the rounds is the
figure to read. Times are each sweep's own ``finished_at`` minus the moment before its
POST, as in bench/sweep.py; CPU is the user + system time of the service's two worker
processes (all their threads: the pulse's and the blob writers' too) over the sweep,
from /proc (Linux).

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/sweep_ab.py --rounds 16 /tmp/before .
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import sweep  # noqa: E402

HALVING = {"name": "halving", "factor": 3, "min_epochs": 5}
POLL_SECONDS = 0.25


def worker_pids(serve_pid: int) -> list[int]:
    """The worker processes ``backprop serve`` (pid ``serve_pid``) runs now: its children
    started as ``... app.cli worker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == serve_pid and b"worker" in argv:  # an argument, not part of a path
            found.append(int(entry.name))
    return found


def cpu_by_pid(serve_pid: int) -> dict[int, float]:
    """User + system CPU seconds so far (all threads) of each worker of ``serve_pid``."""
    seconds = {}
    for pid in worker_pids(serve_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def timed_sweep(
    client: Any, dataset_id: str, strategy: dict[str, Any], serve_pid: int | None = None
) -> tuple[float, float]:
    """Seconds from just before POST /v1/sweeps to the sweep's ``finished_at``, and the
    CPU seconds the workers of ``serve_pid`` spent meanwhile (read a moment after the end,
    so that the last ending's writes are in; a worker restarted meanwhile counts from its
    start, and what the one it replaced spent is lost: a warning says so)."""
    before = cpu_by_pid(serve_pid) if serve_pid is not None else {}
    started = time.time()
    body = sweep.sweep_body(dataset_id, strategy, sweep.EPOCHS)
    state = _service.check(client.post("/v1/sweeps", json=body), 202)
    while state["status"] in ("queued", "running"):
        time.sleep(POLL_SECONDS)
        state = _service.check(client.get(f"/v1/sweeps/{state['id']}"), 200)
    if state["status"] != "succeeded":
        raise RuntimeError(f"the sweep ended {state['status']}")
    time.sleep(0.2)
    after = cpu_by_pid(serve_pid) if serve_pid is not None else {}
    if set(before) - set(after):
        print(f"warning: worker(s) {sorted(set(before) - set(after))} ended during the sweep")
    cpu = sum(spent - before.get(pid, 0.0) for pid, spent in after.items())
    return _service.parse_time(state["finished_at"]) - started, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path, help="two source trees (repository roots)")
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.trees]
    print(_service.Conditions.collect().describe())
    x, y, _, _ = sweep.digits()
    npz = sweep._service_npz(x, y)
    times: dict[Path, list[tuple[float, float, float, float]]] = {tree: [] for tree in trees}
    with contextlib.ExitStack() as stack:
        clients = {}
        for tree in trees:
            extra = {"BACKPROP_BLAS_THREADS": "1", "PYTHONPATH": str(tree)}
            service = stack.enter_context(_service.running_service(workers=2, extra_env=extra))
            client = stack.enter_context(service.client())
            dataset = _service.upload_npz(client, name="digits", npz=npz)["id"]
            timed_sweep(client, dataset, HALVING)  # warm: the first sweep loads and prepares
            clients[tree] = (client, dataset, service.proc.pid)
        for round_ in range(args.rounds):
            for tree in trees if round_ % 2 == 0 else trees[::-1]:
                client, dataset, serve_pid = clients[tree]
                grid, grid_cpu = timed_sweep(client, dataset, {"name": "grid"}, serve_pid)
                halving, halving_cpu = timed_sweep(client, dataset, HALVING, serve_pid)
                times[tree].append((grid, halving, grid_cpu, halving_cpu))
                print(
                    f"round {round_ + 1} {tree}: grid {grid:.3f} s (CPU {grid_cpu:.2f} s), "
                    f"halving {halving:.3f} s (CPU {halving_cpu:.2f} s), {grid / halving:.2f}x; "
                    f"load {_service.load_average()}",
                    flush=True,
                )
    for tree, rows in times.items():
        ratios = [grid / halving for grid, halving, _, _ in rows]
        print(
            f"{tree}: halving vs grid median {statistics.median(ratios):.2f}x "
            f"(rounds >= {sweep.TARGET_HALVING}x: {sum(r >= sweep.TARGET_HALVING for r in ratios)} "
            f"of {len(ratios)}); median grid {statistics.median(r[0] for r in rows):.3f} s, "
            f"halving {statistics.median(r[1] for r in rows):.3f} s"
        )
    old, new = (times[tree] for tree in trees)
    for index, what in enumerate(["grid wall", "halving wall", "grid CPU", "halving CPU"]):
        change = [b[index] / a[index] - 1 for a, b in zip(old, new, strict=True) if a[index] > 0]
        if change:
            median, mean = statistics.median(change), statistics.mean(change)
            print(
                f"{what}: {trees[1]} vs {trees[0]}, per round: median {median:+.1%}, "
                f"mean {mean:+.1%} ({len(change)} rounds)"
            )


if __name__ == "__main__":
    main()
