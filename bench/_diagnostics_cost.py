"""What the per-layer statistics (``diagnostics``) cost: ``train_throughput.py --diagnostics``.

A single trainer per arm cannot resolve a 3% target here: two identical trainers differ by
about 3% (where their buffers landed in memory and in the caches), which an A/A control
of one trainer against one shows. So each arm has several trainer instances (``instances``,
default 6): ``Ours`` (SGD) with diagnostics off and on, built alternately, trained a quarter
of an epoch each per round, in an order that rotates and reverses from round to round (all
stay in step, so an epoch ends in the same round for all).

Every step is timed (``timed_steps``); a trainer's epoch cost is estimated from its median
step and its median end of an epoch (``EpochTimes.estimate``). The cost is mean(on) /
mean(off) - 1 over the instances; the A/A control is the first half of the off instances
against the second half (what identical trainers differ by, with the same number of
instances behind each side as behind the cost's). Both get a 95% interval from resampling
the rounds and, within each arm, the instances (200 draws). The process is pinned to one
core, the garbage collector is off while measuring, and the clock is the caller's (process
CPU time with ``--clock cpu``).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from app.engine.training import Trainer

DRAWS = 200  # resamples behind each interval
WARMUP_ROUNDS = 8  # two epochs


class CaseLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def batch(self) -> int: ...
    @property
    def rows(self) -> int: ...


def timed_steps(
    trainer: Trainer, batches: int, clock: Callable[[], float]
) -> tuple[np.ndarray, list[float]]:
    """Train ``batches`` more batches: (the ``clock`` seconds of each step, the seconds of
    each last step of an epoch together with the end of that epoch (metrics and, when
    on, the layer statistics) and the next one's shuffle). A step is timed from one
    ``should_stop`` call (made before every batch) to the next, so the engine is
    measured as the worker runs it, without any hook of its own."""
    stamps: list[float] = []
    ends: list[int] = []  # stamps[i - 1] .. stamps[i + 1] hold an end of an epoch

    def stop() -> bool:
        stamps.append(clock())
        return len(stamps) - len(ends) > batches

    def end(_entry: dict[str, Any]) -> None:
        ends.append(len(stamps))
        stamps.append(clock())

    trainer.run(should_stop=stop, on_epoch=end)
    cut = np.array(stamps)
    tails = [float(cut[i + 1] - cut[i - 1]) for i in ends]
    steps = np.diff(np.delete(cut, ends))
    tail_steps = [i - 1 - k for k, i in enumerate(ends)]  # the steps that hold an end
    return np.delete(steps, tail_steps), tails


@dataclass
class EpochTimes:
    """The timed rounds of one trainer: each round's steps, and its epoch ends (a round is
    a quarter of an epoch, so one round in four holds one)."""

    steps: list[np.ndarray]
    tails: list[list[float]]

    def estimate(self, rounds: np.ndarray, per_epoch: int) -> float:
        """An epoch's typical cost from the rounds ``rounds``: (per_epoch - 1) x the median
        step plus the median last step with the end of the epoch. Medians of thousands of
        steps hardly move when another process takes the core for a while."""
        steps = np.concatenate([self.steps[i] for i in rounds])
        tails = [t for i in rounds for t in self.tails[i]]
        tail = float(np.median(tails)) if tails else float(np.median(steps))
        return float((per_epoch - 1) * np.median(steps) + tail)


def _ratio(
    times: list[EpochTimes], top: list[int], bottom: list[int], rounds: np.ndarray, per_epoch: int
) -> float:
    """mean estimate of the ``top`` trainers / that of the ``bottom`` ones, minus 1."""
    up = np.mean([times[i].estimate(rounds, per_epoch) for i in top])
    down = np.mean([times[i].estimate(rounds, per_epoch) for i in bottom])
    return float(up / down - 1)


def measure_case(
    case: CaseLike,
    make: Callable[[bool], Trainer],
    seconds: float,
    clock: Callable[[], float],
    instances: int,
    target: float,
) -> list[str]:
    """One case's lines: per-instance median steps, the cost and the A/A control."""
    arms = [on for _ in range(instances) for on in (False, True)]
    trainers = [make(on) for on in arms]
    offs = [i for i, on in enumerate(arms) if not on]
    ons = [i for i, on in enumerate(arms) if on]
    per_epoch = -(-case.rows // case.batch)
    quarter = max(per_epoch // 4, 1)
    for _ in range(WARMUP_ROUNDS):
        for trainer in trainers:
            timed_steps(trainer, quarter, clock)
    gc.collect()
    gc.disable()
    times = [EpochTimes([], []) for _ in trainers]
    count = len(trainers)
    deadline, index = time.perf_counter() + seconds, 0
    try:
        while time.perf_counter() < deadline or index < 8 or index % 4:
            order = [(k + index) % count for k in range(count)]
            for k in order if index % 2 == 0 else order[::-1]:
                steps, tails = timed_steps(trainers[k], quarter, clock)
                times[k].steps.append(steps)
                times[k].tails.append(tails)
            index += 1
    finally:
        gc.enable()
    everything = np.arange(index)
    half = len(offs) // 2
    cost = _ratio(times, ons, offs, everything, per_epoch)
    control = _ratio(times, offs[:half], offs[half:], everything, per_epoch)
    rng = np.random.default_rng(0)
    costs, controls = [], []
    for _ in range(DRAWS):
        rounds = rng.integers(0, index, index)
        off_draw = [offs[j] for j in rng.integers(0, len(offs), len(offs))]
        on_draw = [ons[j] for j in rng.integers(0, len(ons), len(ons))]
        costs.append(_ratio(times, on_draw, off_draw, rounds, per_epoch))
        aa = [offs[j] for j in rng.permutation(len(offs))]
        controls.append(_ratio(times, aa[:half], aa[half:], rounds, per_epoch))
    low, high = np.percentile(costs, [2.5, 97.5])
    spread = np.percentile(np.abs(controls), 95)
    epochs = {i: times[i].estimate(everything, per_epoch) for i in range(count)}
    off = float(np.mean([epochs[i] for i in offs]))
    on = float(np.mean([epochs[i] for i in ons]))
    medians = [float(np.median(np.concatenate(t.steps))) * 1e6 for t in times]
    status = "ok" if cost <= target else "MISSED"
    return [
        f"  {case.name} batch {case.batch}: {instances} trainers per arm, {index} rounds of "
        f"{quarter} steps, {per_epoch} steps an epoch",
        "    median step (us), off: "
        + " ".join(f"{medians[i]:.1f}" for i in offs)
        + "; on: "
        + " ".join(f"{medians[i]:.1f}" for i in ons),
        f"    epoch off {off * 1e3:.2f} ms / on {on * 1e3:.2f} ms ({case.rows / off:,.0f} / "
        f"{case.rows / on:,.0f} samples/s); cost {cost:+.2%} (95% interval {low:+.2%} .. "
        f"{high:+.2%}); A/A control (off halves) {control:+.2%} (95% of resampled |A/A| "
        f"<= {spread:.2%}); target <= {target:.0%} {status}",
    ]


def diagnostics_cost(
    cases: list[tuple[CaseLike, float, Callable[[bool], Trainer]]],
    seconds: float,
    clock: Callable[[], float],
    instances: int = 6,
) -> list[str]:
    """The per-layer statistics' share of training time for each (case, target, make
    trainer(diagnostics on?)); see the module docstring."""
    lines = [
        f"diagnostics cost (SGD; {seconds:.0f}s per case; rounds of a quarter epoch per "
        f"trainer; load average {os.getloadavg()[0]:.2f} at the start)"
    ]
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    lines.append(f"  pinned to one core: {pinned}; gc off while measuring")
    for case, target, make in cases:
        lines += measure_case(case, make, seconds, clock, instances, target)
    lines.append(f"  load average {os.getloadavg()[0]:.2f} at the end")
    return lines
