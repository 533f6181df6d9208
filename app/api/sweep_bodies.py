"""A sweep body expanded into its trials, each checked against the network and job
request schemas (NetworkCreate, JobCreate) before anything is stored.

A refusal is a 422 whose loc names the grid path the bad value came from
(``["body", "grid", "job.optimizer.learning_rate"]``), or the base body's own field
(``["body", "network", "layers", 0, "units"]``) when no grid path covers it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from app.api.schemas.jobs import JobCreate, JobTarget
from app.api.schemas.networks import NetworkCreate
from app.api.schemas.sweeps import SweepCreate
from app.services import sweep_grid
from app.services.errors import Invalid
from app.services.sweeps import SweepSpec, TrialSpec

PLACEHOLDER_ID = "net_sweep_trial"  # JobCreate wants a network id; a trial has none


def _refusal(exc: ValidationError, root: str, paths: list[str]) -> Invalid:
    """The first error, at its grid path (or under ``body.<root>``)."""
    error = exc.errors()[0]
    where = (root, *error["loc"])
    return Invalid(error["msg"], sweep_grid.located(where, paths), error_type=str(error["type"]))


def _validated(
    schema: type[BaseModel], body: dict[str, Any], root: str, paths: list[str]
) -> BaseModel:
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        raise _refusal(exc, root, paths) from None


def _refuse_keys(body: dict[str, Any], keys: tuple[str, ...], root: str, why: str) -> None:
    for key in keys:
        if key in body:
            raise Invalid(why, ("body", root, key))


def _trial(body: SweepCreate, params: dict[str, Any], paths: list[str]) -> tuple[Any, Any]:
    """The trial's network and job bodies for ``params``, validated."""
    network, job = sweep_grid.apply(body.network, body.job, params)
    net = _validated(NetworkCreate, {**network, "name": body.name}, "network", paths)
    target = {"network_id": PLACEHOLDER_ID, "dataset_id": body.dataset_id}
    return net, _validated(JobCreate, {**job, **target}, "job", paths)


def _check_alternatives(body: SweepCreate, first: dict[str, Any], paths: list[str]) -> None:
    """Random search: every alternative of every list checked once, drawn or not (in the
    first trial's place), as a grid's are in its combinations."""
    for path, values in body.grid.items():
        if not isinstance(values, list):
            continue
        seen: set[str] = set()
        for value in values:
            key = json.dumps(value, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                _trial(body, {**first, path: value}, paths)


def sweep_spec(body: SweepCreate) -> tuple[SweepSpec, list[TrialSpec]]:
    """The sweep and its trials, every one valid as a network and a job body."""
    strategy = body.strategy.model_dump()
    _refuse_keys(body.network, ("name",), "network", "the sweep names its trials' networks")
    _refuse_keys(body.job, sweep_grid.IDS, "job", "a sweep's trials use the sweep's dataset")
    paths = list(body.grid)
    trials = []
    drawn = sweep_grid.trial_params(body.grid, strategy)
    if strategy["name"] == "random" and drawn:
        _check_alternatives(body, drawn[0], paths)
    for params in drawn:
        net, options = _trial(body, params, paths)
        trials.append(
            TrialSpec(
                params=params,
                network=net.model_dump(exclude={"name"}),
                job=options.model_dump(mode="json", exclude=set(JobTarget.model_fields)),
            )
        )
    spec = SweepSpec(
        name=body.name,
        dataset_id=body.dataset_id,
        network=body.network,
        job=body.job,
        grid=body.grid,
        strategy=strategy,
        metric=str(body.metric),
        max_parallel=body.max_parallel,
    )
    return spec, trials
