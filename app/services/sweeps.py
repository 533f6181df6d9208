"""Sweep verbs: create (every trial validated and its job queued in one transaction),
read, list, cancel. Trials are ordinary jobs (app/jobs/sweep_advance.py moves a sweep on).

A sweep counts as one active job for ``BACKPROP_MAX_ACTIVE_JOBS``; each trial is held to
the per-job limits (sample-epochs, cost) and the owner's storage quota is checked for the
models of all trials together.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select

from app.config import Settings
from app.engine import labels
from app.jobs import queue, sweep_advance, trial_cost
from app.services import sweep_grid, sweep_order
from app.services.errors import Conflict, Invalid, Loc, NotFound, ServiceError
from app.services.fit import check_labels_fit
from app.services.jobs import check_active_jobs, check_job_size, training_options
from app.services.networks import describe_network
from app.services.ownership import get_owned, page
from app.services.quota import check_owner_bytes
from app.services.sweep_view import SweepView, view, views
from app.storage.database import Database
from app.storage.tables import Dataset, JobStatus, Sweep, utcnow

PATH_LOC = ("path", "sweep_id")
CLASSIFIER_METRICS = ("accuracy",)
REGRESSION_METRICS = ("mae", "r2")


@dataclass(frozen=True)
class TrialSpec:
    """One trial: its params by path and the validated network and job bodies they give
    (the network body without a name, the job body without ids)."""

    params: dict[str, Any]
    network: dict[str, Any]
    job: dict[str, Any]


@dataclass(frozen=True)
class SweepSpec:
    name: str
    dataset_id: str
    network: dict[str, Any]
    job: dict[str, Any]
    grid: dict[str, Any]
    strategy: dict[str, Any]
    metric: str
    max_parallel: int | None


def _check_metric(metric: str, loss: str, options: dict[str, Any]) -> None:
    base = metric.removeprefix("val_")
    fits = CLASSIFIER_METRICS if labels.task_of(loss) != "regression" else REGRESSION_METRICS
    if base != "loss" and base not in fits:
        raise Invalid(f"{metric} is not measured for a {loss} network", ("body", "metric"))
    if metric.startswith("val_") and not options.get("validation_split"):
        raise Invalid(f"{metric} needs job.validation_split > 0", ("body", "metric"))


@contextmanager
def _under(body: str, paths: list[str]) -> Iterator[None]:
    """Refusals of the network or job checks shared with POST /v1/networks and
    /v1/jobs (their loc under ``body``) located in the sweep: at the grid path that set
    the value, else under the sweep's own ``network`` or ``job``."""
    try:
        yield
    except ServiceError as exc:
        where = (body, *exc.loc[1:]) if exc.loc[:1] == ("body",) else (body,)
        exc.loc = sweep_grid.located(where, paths)
        raise


def _check_fits(config: dict[str, Any], dataset: Dataset, paths: list[str]) -> None:
    """The dataset fits the trial's network; a refusal names the grid path that set the
    part that does not fit (network.input_size, the last layer, the loss), when one did,
    and otherwise the sweep's own network or dataset."""
    last: Loc = ("network", "layers", len(config["layers"]) - 1)
    try:
        check_labels_fit(config, dataset, None)
    except Invalid as exc:
        parts: list[Loc] = [("network", "input_size")] if exc.type == "shape_mismatch" else []
        parts += [last, ("network", "loss")] if exc.type == "labels_mismatch" else []
        for part in parts:
            if sweep_grid.path_of(part, paths) is not None:
                exc.loc = sweep_grid.located(part, paths)
                raise
        if exc.loc == ("body", "network_id"):  # a sweep has no network id: its network
            exc.loc = ("body", *last)
        raise


def create_sweep(
    db: Database, settings: Settings, *, owner_id: int, spec: SweepSpec, trials: Sequence[TrialSpec]
) -> SweepView:
    """Check the dataset, every trial and the limits, then store the sweep and queue its
    trials (under halving, each to the first rung's epochs)."""
    built = []
    paths = list(spec.grid)
    # Trials share networks and job bodies (a 48-trial grid has 4 networks and 12 job
    # bodies): each distinct one is checked once, and its trials share the result, which
    # nothing changes afterwards.
    networks: dict[str, tuple[dict[str, Any], int]] = {}
    jobs: dict[str, dict[str, Any]] = {}
    for trial in trials:
        network_key = json.dumps(trial.network, sort_keys=True, default=str)
        if network_key not in networks:
            with _under("network", paths):
                networks[network_key] = describe_network(settings, **trial.network)
        config, parameters = networks[network_key]
        job_key = json.dumps(trial.job, sort_keys=True, default=str)
        if job_key not in jobs:
            with _under("job", paths):
                jobs[job_key] = training_options(trial.job)
        options = jobs[job_key]
        _check_metric(spec.metric, config["loss"], options)
        built.append((config, parameters, options))
    first_rung: int | None = None
    if spec.strategy["name"] == "halving":
        epochs = int(built[0][2]["epochs"])
        strategy = spec.strategy
        first_rung = sweep_advance.rung_targets(
            int(strategy["min_epochs"]), int(strategy["factor"]), epochs
        )[0]
    with db.session() as session:
        check_active_jobs(session, settings, owner_id)
        dataset = get_owned(
            session,
            Dataset,
            spec.dataset_id,
            owner_id=owner_id,
            loc=("body", "dataset_id"),
            for_update=True,
        )
        for config, parameters, options in built:
            _check_fits(config, dataset, paths)
            check_job_size(
                settings,
                epochs=int(options["epochs"]),
                n_samples=dataset.n_samples,
                parameters=parameters,
                loc=("body", "job", "epochs"),
            )
        model_bytes = sum(4 * parameters for _, parameters, _ in built)
        check_owner_bytes(
            session, settings, owner_id=owner_id, adding=model_bytes, loc=("body", "grid")
        )
        sweep = Sweep(
            owner_id=owner_id,
            name=spec.name,
            dataset_id=dataset.id,
            network=spec.network,
            job=spec.job,
            grid=spec.grid,
            strategy=spec.strategy,
            trials=[trial.params for trial in trials],
            metric=spec.metric,
            max_parallel=spec.max_parallel,
        )
        session.add(sweep)
        session.flush()
        # Queued (so claimed) longest first; each keeps its grid index (sweep_order).
        costs = [
            trial_cost.trial_of(config, options, first_rung or int(options["epochs"]), size)
            for config, size, options in built
        ]
        queued_at = utcnow()
        for rank, index in enumerate(sweep_order.queue_order(costs, dataset.n_samples)):
            config, _, options = built[index]
            queue.enqueue(
                session,
                owner_id=owner_id,
                network_id=None,
                dataset_id=dataset.id,
                init_model_id=None,
                network_config=config,
                options=options,
                epochs=first_rung or int(options["epochs"]),
                sweep_id=sweep.id,
                trial_index=index,
                # one microsecond apart: the claim order (oldest first) is this order
                queued_at=queued_at + timedelta(microseconds=rank),
                flush=False,
            )
        session.flush()
        return view(session, sweep)


# Built once: dashboards poll a sweep, and building the statement cost as much as running
# it (get_owned's, with the same 404).
_OWNED_SWEEP = select(Sweep).where(
    Sweep.id == bindparam("sweep_id"), Sweep.owner_id == bindparam("owner_id")
)


def get_sweep(db: Database, *, owner_id: int, sweep_id: str) -> SweepView:
    with db.read_session() as session:
        params = {"sweep_id": sweep_id, "owner_id": owner_id}
        sweep = session.scalar(_OWNED_SWEEP, params)
        if sweep is None:
            raise NotFound("sweep", PATH_LOC)
        return view(session, sweep)


def list_sweeps(
    db: Database, *, owner_id: int, limit: int, offset: int
) -> tuple[list[SweepView], int]:
    """A page of the owner's sweeps, newest first, each with its trials."""
    with db.read_session() as session:
        rows, total = page(session, Sweep, owner_id=owner_id, limit=limit, offset=offset)
        return views(session, rows), total


def cancel_sweep(db: Database, *, owner_id: int, sweep_id: str) -> SweepView:
    """Cancel the queued trials, stop the running ones; finished trials keep their models
    (a promoted halving trial its last rung's).
    409 once the sweep has ended."""
    with db.read_session() as session:
        sweep = get_owned(session, Sweep, sweep_id, owner_id=owner_id, loc=PATH_LOC)
        _check_running(sweep.status)
    with db.session() as session:
        # The trials first, the sweep row after: the order in which a finishing worker
        # takes them (its job row, then the sweep), so the two never wait on each other.
        sweep_advance.cancel_trials(session, sweep_id)
        row = session.scalars(select(Sweep).where(Sweep.id == sweep_id).with_for_update()).one()
        # Checked again under the lock: a concurrent cancel (or the last trial's ending)
        # may have ended it since; then nothing here is kept (409, the cancel rolled back).
        _check_running(row.status)
        row.status, row.finished_at = JobStatus.CANCELLED, utcnow()
    return get_sweep(db, owner_id=owner_id, sweep_id=sweep_id)


def _check_running(status: str) -> None:
    if status in sweep_advance.SWEEP_TERMINAL:
        raise Conflict(f"the sweep has already finished ({status})", PATH_LOC)


def require_sweep(db: Database, *, owner_id: int, sweep_id: str) -> None:
    """404 unless the owner has this sweep."""
    with db.read_session() as session:
        owned = session.scalar(
            select(Sweep.id).where(Sweep.id == sweep_id, Sweep.owner_id == owner_id)
        )
    if owned is None:
        raise NotFound("sweep", PATH_LOC)
