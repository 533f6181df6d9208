"""A sweep's search space: dotted paths into the network and job bodies, expanded into
one (network, job) body pair per trial.

A path is ``network.<field>[.<field>...]`` or ``job.<field>[.<field>...]`` (e.g.
``job.optimizer.learning_rate``, ``network.layers`` whose values are whole layer lists).
Its value is a list of alternatives, or (random search only) a distribution:
``{"log_uniform": [lo, hi]}`` (exp of a uniform draw in [ln lo, ln hi]), ``{"uniform":
[a, b]}`` or ``{"int_uniform": [a, b]}`` (both ends included). Grid and halving take the
Cartesian product of the lists in the order given; random draws ``trials`` trials from a
generator seeded by ``seed``, one value per path. Values are checked by the API against
the network and job schemas, trial by trial (app/api/sweep_bodies.py).

A trial's job body differs from a plain job's in one default (``TRIAL_JOB_DEFAULTS``):
``diagnostics`` is off unless the sweep's job body or a grid path sets it. The per-layer
statistics and findings are the X-ray of a single job; in a sweep's many short trials they
cost a share of every step and epoch end (BENCHMARKS.md §9) and nobody reads them there.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from app.services.errors import Invalid

ROOTS = ("network", "job")
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform")
IDS = ("network_id", "dataset_id", "init_model_id")  # a sweep's job body names none
MAX_TRIALS = 1000
MAX_PATH = 200
INT_LOW, INT_HIGH = -(2**63), 2**63 - 1  # int_uniform draws 64-bit integers
TRIAL_JOB_DEFAULTS: dict[str, Any] = {"diagnostics": False}  # see the module docstring


def _loc(path: str) -> tuple[str, ...]:
    return ("body", "grid", path)


def check_path(path: str, strategy: str) -> None:
    """422 at the path for one that names neither body, an id, or (halving) the epochs,
    which halving sets itself."""
    root, _, rest = path.partition(".")
    if len(path) > MAX_PATH:
        raise Invalid(f"a grid path has at most {MAX_PATH} characters", _loc(path[:MAX_PATH]))
    if root not in ROOTS or not rest or "" in rest.split("."):
        raise Invalid(f"a grid path starts with network. or job., not {path!r}", _loc(path))
    if root == "job" and rest.split(".")[0] in IDS:
        raise Invalid("a sweep's trials all use the sweep's dataset; ids cannot vary", _loc(path))
    if path == "network.name":
        raise Invalid("the sweep names its trials' networks; network.name cannot vary", _loc(path))
    if strategy == "halving" and path == "job.epochs":
        raise Invalid("halving sets each rung's epochs itself; job.epochs is the last", _loc(path))


def _distribution(path: str, value: Mapping[str, Any]) -> tuple[str, float, float]:
    """(name, low, high) of a distribution value, checked (int_uniform's bounds stay
    Python integers: a float would round those past 2**53)."""
    if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise Invalid(f"a distribution is one of {', '.join(DISTRIBUTIONS)}", _loc(path))
    name, bounds = next(iter(value.items()))
    at = (*_loc(path), name)
    numeric = isinstance(bounds, list) and len(bounds) == 2
    if not numeric or not all(
        isinstance(b, int | float) and not isinstance(b, bool) for b in bounds
    ):
        raise Invalid(f"{name} takes [low, high], two numbers", at)
    if name == "int_uniform":
        if not all(isinstance(b, int) for b in bounds):
            raise Invalid("int_uniform takes integer bounds such as [16, 256]", at)
        low, high = bounds
        if not INT_LOW <= low < high <= INT_HIGH:
            raise Invalid(f"int_uniform needs low < high within [{INT_LOW}, {INT_HIGH}]", at)
        return name, low, high
    try:
        low, high = float(bounds[0]), float(bounds[1])
    except OverflowError:  # an integer past the largest float
        raise Invalid(f"{name} needs finite low < high", at) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise Invalid(f"{name} needs finite low < high", at)
    if name == "log_uniform" and low <= 0:
        raise Invalid("log_uniform needs 0 < low", at)
    if name == "uniform" and not math.isfinite(high - low):
        raise Invalid("uniform needs high - low to be a finite number", at)
    return name, low, high


def _draw(rng: np.random.Generator, name: str, low: float, high: float) -> float | int:
    if name == "log_uniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    if name == "int_uniform":  # low and high are Python integers here
        return int(rng.integers(int(low), int(high), endpoint=True))
    return float(rng.uniform(low, high))


def trial_params(grid: Mapping[str, Any], strategy: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each trial's value for each path, in trial order (422 at a path that is refused)."""
    name = str(strategy["name"])
    for path, values in grid.items():
        check_path(path, name)
        if isinstance(values, Mapping):
            if name != "random":
                raise Invalid("distributions are for random search; give a list", _loc(path))
            _distribution(path, values)
        elif not isinstance(values, list) or not values:
            raise Invalid(
                "give a non-empty list of values (or, random: a distribution)", _loc(path)
            )
    if name == "random":
        rng = np.random.default_rng(int(strategy.get("seed", 0)))
        trials: list[dict[str, Any]] = []
        for _ in range(int(strategy["trials"])):
            trial: dict[str, Any] = {}
            for path, values in grid.items():
                if isinstance(values, Mapping):
                    trial[path] = _draw(rng, *_distribution(path, values))
                else:
                    trial[path] = values[int(rng.integers(len(values)))]  # apply() copies
            trials.append(trial)
        return trials
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_TRIALS:
        raise Invalid(
            f"the grid has {count} configurations, at most {MAX_TRIALS}", ("body", "grid")
        )
    paths = list(grid)
    return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*grid.values())]


def apply(
    network: Mapping[str, Any], job: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (network, job) bodies of one trial: the base bodies with ``params`` set, and
    ``TRIAL_JOB_DEFAULTS`` for the job fields that neither sets."""
    job_body = {**TRIAL_JOB_DEFAULTS, **copy.deepcopy(dict(job))}
    bodies = {"network": copy.deepcopy(dict(network)), "job": job_body}
    for path, value in params.items():
        root, *keys = path.split(".")
        node = bodies[root]
        for depth, key in enumerate(keys[:-1]):
            if key not in node:
                node[key] = {}
            elif not isinstance(node[key], dict):  # a list, a number, null: no fields to set
                where = ".".join([root, *keys[: depth + 1]])
                raise Invalid(
                    f"{where} is not an object here, so {path} names nothing to set", _loc(path)
                )
            node = node[key]
        node[keys[-1]] = copy.deepcopy(value)
    return bodies["network"], bodies["job"]


def located(where: tuple[str | int, ...], paths: list[str]) -> tuple[str | int, ...]:
    """The loc of a refusal about ``where`` in a sweep body (``("network", "loss")``):
    the grid path it falls under (``("body", "grid", "network.loss")``), else the sweep
    body's own field (``("body", "network", "loss")``)."""
    path = path_of(where, paths)
    return ("body", "grid", path) if path is not None else ("body", *where)


def path_of(loc: tuple[str | int, ...], paths: list[str]) -> str | None:
    """The grid path that a validation error at ``loc`` (``("network", "layers", 0)``)
    falls under, if any: the longest path that is a prefix of it, else the shortest path
    under the field it names (an error at ``job.optimizer.foo`` is that of
    ``job.optimizer.foo.bar``; one about a whole body, at ``("network",)``, is no path's)."""
    dotted = [str(part) for part in loc]
    above = [p for p in paths if dotted[: len(p.split("."))] == p.split(".")]
    if above:
        return max(above, key=lambda p: len(p.split(".")))
    below = [p for p in paths if len(dotted) > 1 and p.split(".")[: len(dotted)] == dotted]
    return min(below, key=lambda p: len(p.split("."))) if below else None
