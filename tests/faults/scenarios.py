"""The fault scenarios, each a function of a running :class:`Cluster` and a size.

The suite (tests/faults/test_*.py) runs them with small counts and asserts on the
returned report; bench/faults.py runs the same functions with large counts and prints
the figures. A report's :meth:`problems` lists every broken promise in words, so a
failing test says exactly which job lost what.
"""

from __future__ import annotations

import io
import random
import re
import sqlite3
import threading
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.jobs.queue import requeue_expired
from app.storage.tables import JobStatus, WorkerHeartbeat
from tests.faults.harness import (
    ApiClient,
    Cluster,
    HarnessError,
    Proc,
    Workload,
    error_lines,
    kill_fractions,
    lock_error_lines,
    wait_for_attempt,
    wait_for_epoch,
    wait_until,
    weights_equal,
)

SUCCEEDED = JobStatus.SUCCEEDED
CANCELLED = JobStatus.CANCELLED
FAILED = JobStatus.FAILED


def _recovery_timeout(cluster: Cluster) -> float:
    """Generous bound on a takeover: lease + requeue sweep + worker start, times a margin."""
    return cluster.config.lease_seconds * 3 + 60.0


# --------------------------------------------------------------------------- helpers


def worker_holding(cluster: Cluster, procs: list[Proc], job_id: str) -> Proc:
    """The process among ``procs`` whose worker row holds ``job_id`` (via pid)."""
    row = cluster.probe.job(job_id)
    with cluster.probe.db.read_session() as session:
        pid = session.scalar(select(WorkerHeartbeat.pid).where(WorkerHeartbeat.id == row.worker_id))
    for proc in procs:
        if proc.pid == pid:
            return proc
    raise HarnessError(f"job {job_id} is held by worker {row.worker_id} (pid {pid}), not ours")


def write_lock_free(cluster: Cluster) -> bool:
    """True when no process holds SQLite's write lock (always True on PostgreSQL)."""
    url = make_url(cluster.config.database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return True
    connection = sqlite3.connect(url.database, timeout=0.05, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


def reference_weights(
    cluster: Cluster, api: ApiClient, network_id: str, dataset_id: str, options: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Weights of an uninterrupted run of the same job, trained by the cluster's workers."""
    job_id = api.submit_job(network_id, dataset_id, **options)
    job = api.wait_terminal([job_id], timeout=300)[job_id]
    if job["status"] != SUCCEEDED or job["attempts"] != 1:
        raise HarnessError(f"the reference run did not succeed cleanly: {job}")
    return api.weights(job["model_id"])


class WorkerPool:
    """Keeps ``count`` workers alive, restarting any that exits (as systemd would)."""

    def __init__(self, cluster: Cluster, count: int, **worker_env: Any) -> None:
        self.cluster = cluster
        self.worker_env = worker_env
        self.procs = [cluster.worker(**worker_env) for _ in range(count)]
        self.restarts = 0
        self.exit_codes: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            for index, proc in enumerate(self.procs):
                code = proc.returncode
                if code is not None:
                    self.exit_codes[code] += 1
                    self.restarts += 1
                    self.procs[index] = self.cluster.worker(**self.worker_env)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for proc in self.procs:
            if proc.alive():
                proc.terminate()


# --------------------------------------------------------------------------- 1. SIGKILL


@dataclass
class KillReport:
    kills: int = 0
    survived: int = 0
    identical: int = 0
    kill_epochs: list[tuple[int, int]] = field(default_factory=list)  # (epoch killed, epochs)
    resumed_from: list[int | None] = field(default_factory=list)  # checkpoint epoch at kill
    recovery_seconds: list[float] = field(default_factory=list)  # kill -> claimed again
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def kill_workers_mid_training(
    cluster: Cluster, api: ApiClient, *, kills: int, workload: Workload, seed: int = 1
) -> KillReport:
    """SIGKILL the worker of a job at a random 10-90% point; a rescuer worker takes it over
    once the lease expires and must end bit-identical to an uninterrupted run.

    The rescuer carries a tripwire, ``BACKPROP_TEST_CRASH_AT=epoch:<c>`` where c is the
    checkpoint epoch at the kill: resuming from the checkpoint it never ends epoch c again,
    while a rescuer that restarted from scratch would die there (and the job would show a
    third attempt). That is how the report knows the job *resumed*."""
    report = KillReport()
    network_id, dataset_id = workload.create(api)
    options = workload.options()
    runner = cluster.worker()
    reference = reference_weights(cluster, api, network_id, dataset_id, options)
    for fraction in kill_fractions(kills, seed):
        job_id = api.submit_job(network_id, dataset_id, **options)
        target = max(1, round(fraction * workload.epochs))
        row = wait_for_epoch(cluster.probe, job_id, target, timeout=120)
        runner.kill()
        killed_at = time.monotonic()
        at_kill = cluster.probe.job(job_id)
        if at_kill.status != JobStatus.RUNNING:
            report.problems_.append(f"{job_id} was {at_kill.status} at the kill (too short)")
            runner = cluster.worker()
            continue
        report.kills += 1
        report.kill_epochs.append((at_kill.epoch, workload.epochs))
        report.resumed_from.append(at_kill.checkpoint_epoch)
        tripwire = f"epoch:{at_kill.checkpoint_epoch}" if at_kill.checkpoint_epoch else None
        rescuer = cluster.worker(crash_at=tripwire)
        resumed = wait_for_attempt(cluster.probe, job_id, 2, timeout=_recovery_timeout(cluster))
        report.recovery_seconds.append(time.monotonic() - killed_at)
        runner = cluster.worker()  # the next job's worker; idle while the rescuer trains
        job = api.wait_terminal([job_id], timeout=300)[job_id]
        if rescuer.terminate() != 0:
            report.problems_.append(f"{job_id}: the rescuer died:\n{rescuer.tail()}")
        if job["status"] != SUCCEEDED:
            report.problems_.append(f"{job_id} ended {job['status']}: {job.get('error')}")
            continue
        report.survived += 1
        if job["attempts"] != 2:
            report.problems_.append(f"{job_id} took {job['attempts']} attempts (expected 2)")
        if resumed.worker_id == row.worker_id:
            report.problems_.append(f"{job_id} was resumed by the worker that was killed")
        if not at_kill.checkpoint_epoch:
            report.problems_.append(f"{job_id} had no checkpoint at epoch {at_kill.epoch}")
        if weights_equal(api.weights(job["model_id"]), reference):
            report.identical += 1
        else:
            report.problems_.append(f"{job_id}: weights differ from the uninterrupted run")
    report.problems_.extend(cluster.probe.invariant_violations())
    return report


# --------------------------------------------------------------------------- 2. crash points

CRASH_POINTS = (
    "before_checkpoint",
    "checkpoint_uncommitted",
    "after_checkpoint",
    "before_final_commit",
    "after_final_commit",
)


@dataclass
class CrashPointReport:
    outcomes: dict[str, str] = field(default_factory=dict)  # point -> final status
    outcomes_by_job: dict[str, str] = field(default_factory=dict)  # point -> job it hit
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    integrity: str = ""
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def claimed_jobs(proc: Proc) -> list[str]:
    """Jobs a worker claimed, in order, from its log ("job <id>: attempt <n> started")."""
    return re.findall(r"job (\S+): attempt \d+ started", proc.output())


def crash_around_commits(
    cluster: Cluster, api: ApiClient, *, workload: Workload, points: tuple[str, ...] = CRASH_POINTS
) -> CrashPointReport:
    """One job per crash point: a burst worker dies there (os._exit), then healthy workers
    finish everything. Each job succeeds once, with exactly one model, bit-identical.

    A crash worker's start-up sweep may hand it an earlier crashed job whose lease has
    already expired (it is the oldest queued one): what each worker claimed is read from
    its log, and the attempts each job should end with are counted from that. A worker
    claims its next job in the transaction of a job's final commit (app/jobs/next_claim.py):
    one that dies right after that commit holds that next job unstarted, which then costs
    it an attempt, as a death right after any claim does; it is read from the database."""
    report = CrashPointReport()
    network_id, dataset_id = workload.create(api)
    options = workload.options()
    jobs: list[str] = []
    crashes: Counter[str] = Counter()  # job -> crashes before its final commit
    for point in points:
        jobs.append(api.submit_job(network_id, dataset_id, **options))
        victim = cluster.worker(burst=True, crash_at=point)
        code = victim.wait(timeout=120)
        report.exit_codes[point] = code
        if code != 137:
            report.problems_.append(f"the worker crashing at {point} exited {code}, not 137")
        claimed = claimed_jobs(victim)
        if len(claimed) != 1:
            report.problems_.append(f"the worker crashing at {point} claimed {claimed}")
            continue
        job_id = claimed[0]
        row = cluster.probe.job(job_id)
        if point == "after_final_commit":
            expected = SUCCEEDED
        else:
            crashes[job_id] += 1
            expected = JobStatus.RUNNING
        report.outcomes_by_job[point] = job_id
        if row.status != expected:
            report.problems_.append(f"right after a crash at {point}, {job_id} is {row.status}")
        for other, held in cluster.probe.jobs(jobs).items():  # claimed with the final commit
            if other == job_id or held.worker_id != row.worker_id:
                continue
            if held.status == JobStatus.RUNNING and point == "after_final_commit":
                crashes[other] += 1
            elif held.status == JobStatus.RUNNING:
                report.problems_.append(f"after a crash at {point}, it also held {other}")
    # A clean run for comparison, then recovery by two healthy workers.
    healthy = [cluster.worker(), cluster.worker()]
    reference = reference_weights(cluster, api, network_id, dataset_id, options)
    finished = api.wait_terminal(jobs, timeout=_recovery_timeout(cluster) + 120)
    for point, job_id in report.outcomes_by_job.items():
        report.outcomes[point] = finished[job_id]["status"]
    for job_id in jobs:
        job = finished[job_id]
        if job["status"] != SUCCEEDED:
            report.problems_.append(f"{job_id} ended {job['status']}: {job.get('error')}")
            continue
        expected_attempts = crashes[job_id] + 1  # the crashes, then the attempt that finished
        if job["attempts"] != expected_attempts:
            report.problems_.append(
                f"{job_id}: {job['attempts']} attempts, expected {expected_attempts}"
            )
        if not weights_equal(api.weights(job["model_id"]), reference):
            report.problems_.append(f"{job_id}: weights differ from a clean run")
    for proc in healthy:
        proc.terminate()
    report.integrity = cluster.probe.integrity()
    report.problems_.extend(cluster.probe.invariant_violations())
    return report


# --------------------------------------------------------------------------- 3. zombie


@dataclass
class ZombieReport:
    stopped_at_epoch: int = 0
    takeover_seconds: float = 0.0
    attempts: int = 0
    models: int = 0
    zombie_exit: int | None = None
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def _process_state(pid: int) -> str:
    """The one-letter state of ``pid`` in /proc (``T``: stopped, ``Z``: zombie); ``X`` when
    it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return "X"


def _stop_outside_write(cluster: Cluster, proc: Proc) -> None:
    """SIGSTOP ``proc`` at a moment it holds no SQLite write lock (a process frozen inside
    a write transaction blocks every writer: SQLite has no lock stealing)."""
    for _ in range(200):
        proc.stop()
        wait_until(
            lambda: _process_state(proc.pid) in ("T", "t"), timeout=30, what=f"{proc.name} stopped"
        )
        if write_lock_free(cluster):
            return
        proc.cont()
        time.sleep(random.uniform(0.001, 0.02))  # random jitter: freeze at another moment
    raise HarnessError("could not freeze the worker outside a write transaction")


def zombie_worker(cluster: Cluster, api: ApiClient, *, workload: Workload) -> ZombieReport:
    """SIGSTOP the worker of a job until its lease expires and another worker takes the job,
    then SIGCONT it while the new owner trains: its writes must change nothing."""
    report = ZombieReport()
    network_id, dataset_id = workload.create(api)
    options = workload.options()
    workers = [cluster.worker(), cluster.worker()]
    reference = reference_weights(cluster, api, network_id, dataset_id, options)
    job_id = api.submit_job(network_id, dataset_id, **options)
    wait_for_epoch(cluster.probe, job_id, max(1, workload.epochs // 10), timeout=120)
    zombie = worker_holding(cluster, workers, job_id)
    _stop_outside_write(cluster, zombie)
    frozen = cluster.probe.job(job_id)
    if frozen.status != JobStatus.RUNNING:
        zombie.cont()
        report.problems_.append(f"{job_id} was {frozen.status} at the freeze (too short)")
        return report
    report.stopped_at_epoch = frozen.epoch
    stopped_at = time.monotonic()
    try:
        taken = wait_for_attempt(cluster.probe, job_id, 2, timeout=_recovery_timeout(cluster))
        report.takeover_seconds = time.monotonic() - stopped_at
        if taken.lease_token == frozen.lease_token:
            report.problems_.append("the job was taken over without a new lease token")
    finally:
        zombie.cont()
    # The zombie wakes up mid-epoch while the new owner trains; watch who holds the row.
    owners: set[str | None] = set()

    def finished() -> bool:
        row = cluster.probe.job(job_id)
        if row.status == JobStatus.RUNNING:
            owners.add(row.worker_id)
        return row.status != JobStatus.RUNNING

    wait_until(finished, timeout=300, what=f"{job_id} to finish", interval=0.02)
    if frozen.worker_id in owners:
        report.problems_.append("the woken zombie wrote its worker id back into the job")
    job = api.job(job_id)
    report.attempts = job["attempts"]
    report.models = cluster.probe.models_per_job().get(job_id, 0)
    if job["status"] != SUCCEEDED:
        report.problems_.append(f"{job_id} ended {job['status']}: {job.get('error')}")
    else:
        if report.attempts != 2:
            report.problems_.append(f"{job_id} took {report.attempts} attempts (expected 2)")
        if report.models != 1:
            report.problems_.append(f"{job_id} has {report.models} models")
        if not weights_equal(api.weights(job["model_id"]), reference):
            report.problems_.append(f"{job_id}: weights differ from the uninterrupted run")
    # The zombie must notice and carry on (or exit cleanly), without a traceback: wait
    # until it has passed the point where it would have stored a model.
    gave_up = f"job {job_id}: lease lost; leaving the job to its new owner"
    wait_until(
        lambda: not zombie.alive() or gave_up in zombie.output(),
        timeout=_recovery_timeout(cluster),
        what="the zombie to give the job up",
    )
    report.zombie_exit = zombie.returncode
    if report.zombie_exit not in (None, 0):
        report.problems_.append(f"the zombie exited {report.zombie_exit}:\n{zombie.tail()}")
    tracebacks = [line for line in zombie.output().splitlines() if "Traceback" in line]
    if tracebacks:
        report.problems_.append(f"the zombie logged a traceback:\n{zombie.tail()}")
    report.problems_.extend(cluster.probe.invariant_violations())
    return report


# --------------------------------------------------------------------------- 4. claim race


@dataclass
class RaceReport:
    jobs: int = 0
    succeeded: int = 0
    runs: int = 0  # total attempts over all jobs
    seconds: float = 0.0
    lock_errors: list[str] = field(default_factory=list)
    error_log_lines: list[str] = field(default_factory=list)
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def claim_race(
    cluster: Cluster, api: ApiClient, *, workers: int, jobs: int, submitters: int = 8
) -> RaceReport:
    """``workers`` processes race for ``jobs`` tiny jobs submitted concurrently."""
    report = RaceReport(jobs=jobs)
    workload = Workload(epochs=2, n_samples=40, batch_size=8)
    network_id, dataset_id = workload.create(api)
    procs = [cluster.worker() for _ in range(workers)]
    started = time.monotonic()
    with ThreadPoolExecutor(submitters) as pool:
        ids = list(
            pool.map(
                lambda _: api.submit_job(network_id, dataset_id, **workload.options()), range(jobs)
            )
        )
    finished = api.wait_terminal(ids, timeout=120 + jobs * 2)
    report.seconds = time.monotonic() - started
    for proc in procs:
        code = proc.terminate()
        if code != 0:
            report.problems_.append(f"{proc.name} exited {code} on SIGTERM")
    models = cluster.probe.models_per_job()
    for job_id, job in finished.items():
        report.runs += job["attempts"]
        if job["status"] == SUCCEEDED:
            report.succeeded += 1
        else:
            report.problems_.append(f"{job_id} ended {job['status']}: {job.get('error')}")
        if job["attempts"] != 1:
            report.problems_.append(f"{job_id} ran {job['attempts']} times")
        if models.get(job_id, 0) != 1:
            report.problems_.append(f"{job_id} has {models.get(job_id, 0)} models")
    for proc in cluster.procs:
        log = proc.output()
        report.lock_errors += [f"{proc.name}: {line}" for line in lock_error_lines(log)]
        report.error_log_lines += [f"{proc.name}: {line}" for line in error_lines(log)]
    report.problems_ += report.lock_errors + report.error_log_lines + cluster.server_errors()
    report.problems_.extend(cluster.probe.invariant_violations())
    return report


# --------------------------------------------------------------------------- 5. write load


@dataclass
class LoadReport:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    jobs_submitted: int = 0
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def write_load(
    cluster: Cluster, base_url: str, *, clients: int, rounds: int, workers: int = 2
) -> LoadReport:
    """``clients`` threads create datasets/networks/jobs and predict, ``rounds`` times
    each, while ``workers`` workers train and heartbeat. Every answer must be < 500."""
    report = LoadReport()
    setup = cluster.client()
    workload = Workload(epochs=30, n_samples=100)
    network_id, dataset_id = workload.create(setup)
    model_job = setup.submit_job(network_id, dataset_id, **workload.options(epochs=5))
    procs = [cluster.worker() for _ in range(workers)]
    model_id = setup.wait_terminal([model_job], timeout=120)[model_job]["model_id"]
    lock = threading.Lock()
    rng_x = np.random.default_rng(0).normal(size=(16, 2)).round(4).tolist()

    def record(response: httpx.Response, expected: int) -> Any:
        with lock:
            report.requests += 1
            report.statuses[response.status_code] += 1
            if response.status_code != expected:
                report.problems_.append(
                    f"{response.request.method} {response.request.url.path} -> "
                    f"{response.status_code} (expected {expected}): {response.text[:300]}"
                )
        return response.json() if response.status_code == expected else None

    def one_client(index: int) -> None:
        with httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {cluster.key}"},
            timeout=120,
        ) as http:
            for round_ in range(rounds):
                seed = index * 1000 + round_
                rng = np.random.default_rng(seed)
                x = rng.normal(size=(30, 2)).round(4).tolist()
                y = [int(a + b > 0) for a, b in x]
                ds = record(
                    http.post("/v1/datasets", json={"name": f"c{index}", "x": x, "y": y}), 201
                )
                layers = [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]
                net = record(
                    http.post(
                        "/v1/networks",
                        json={"name": f"c{index}", "input_size": 2, "layers": layers, "seed": seed},
                    ),
                    201,
                )
                if ds and net:
                    body = {
                        "network_id": net["id"],
                        "dataset_id": ds["id"],
                        "epochs": 5,
                        "seed": seed,
                    }
                    job = record(http.post("/v1/jobs", json=body), 202)
                    if job:
                        with lock:
                            report.jobs_submitted += 1
                        record(http.get(f"/v1/jobs/{job['id']}"), 200)
                record(http.post(f"/v1/models/{model_id}/predict", json={"x": rng_x}), 200)
                record(http.get("/v1/jobs", params={"limit": 5}), 200)

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_client, range(clients)))
    report.seconds = time.monotonic() - started
    active = [
        row.id
        for row in cluster.probe.jobs().values()
        if row.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    ]
    setup.wait_terminal(active, timeout=300)
    for proc in procs:
        proc.terminate()
    report.problems_ += cluster.server_errors()
    for proc in cluster.procs:
        report.problems_ += [f"{proc.name}: {line}" for line in lock_error_lines(proc.output())]
    report.problems_.extend(cluster.probe.invariant_violations())
    return report


# --------------------------------------------------------------------------- 6. cancel


@dataclass
class CancelReport:
    queued_cancelled: int = 0
    queued_started: int = 0
    running_cancelled: int = 0
    running_stop_seconds: list[float] = field(default_factory=list)
    race_cancelled: int = 0
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def cancel_queued(cluster: Cluster, api: ApiClient, *, jobs: int, report: CancelReport) -> None:
    """Cancel ``jobs`` queued jobs, then start a worker: none of them may ever start."""
    workload = Workload(epochs=3, n_samples=40)
    network_id, dataset_id = workload.create(api)
    ids = [api.submit_job(network_id, dataset_id, **workload.options()) for _ in range(jobs)]
    for job_id in ids:
        response = api.cancel(job_id)
        if response.status_code != 202 or response.json()["status"] != CANCELLED:
            report.problems_.append(
                f"cancel of queued {job_id}: {response.status_code} {response.text}"
            )
    # A control job queued after them must run: the worker did look at the queue.
    control = api.submit_job(network_id, dataset_id, **workload.options())
    worker = cluster.worker(burst=True)
    worker.wait(timeout=120)
    rows = cluster.probe.jobs(ids)
    models = cluster.probe.models_per_job()
    for job_id in ids:
        row = rows[job_id]
        if row.status == CANCELLED and row.attempts == 0 and row.started_at is None:
            report.queued_cancelled += 1
        else:
            report.queued_started += 1
            report.problems_.append(f"cancelled queued {job_id} ran: {row}")
        if models.get(job_id):
            report.problems_.append(f"cancelled queued {job_id} has a model")
    if cluster.probe.job(control).status != SUCCEEDED:
        report.problems_.append(
            f"the control job {control} did not run: {cluster.probe.job(control)}"
        )


def cancel_running(
    cluster: Cluster, api: ApiClient, *, jobs: int, report: CancelReport, keep_every: int = 2
) -> None:
    """Cancel running jobs mid-training: each ends cancelled, short of its epochs, with a
    model only when ``keep_model`` was asked."""
    workload = Workload(epochs=100_000, n_samples=100)
    network_id, dataset_id = workload.create(api)
    worker = cluster.worker()
    for index in range(jobs):
        keep = index % keep_every == 1
        job_id = api.submit_job(network_id, dataset_id, **workload.options())
        wait_for_epoch(cluster.probe, job_id, 2, timeout=120)
        requested = time.monotonic()
        response = api.cancel(job_id, keep_model=keep)
        if response.status_code != 202:
            report.problems_.append(f"cancel of running {job_id}: {response.status_code}")
            continue
        job = api.wait_terminal([job_id], timeout=_recovery_timeout(cluster))[job_id]
        report.running_stop_seconds.append(time.monotonic() - requested)
        if job["status"] != CANCELLED:
            report.problems_.append(f"cancelled running {job_id} ended {job['status']}")
            continue
        report.running_cancelled += 1
        if job["epoch"] >= workload.epochs:
            report.problems_.append(f"cancelled {job_id} ran all its epochs")
        has_model = cluster.probe.models_per_job().get(job_id, 0)
        if has_model != int(keep):
            report.problems_.append(
                f"cancelled {job_id} (keep_model={keep}) has {has_model} models"
            )
        if api.cancel(job_id).status_code != 409:
            report.problems_.append(f"a second cancel of finished {job_id} was not 409")
    worker.terminate()


def cancel_racing_kill(
    cluster: Cluster, api: ApiClient, *, rounds: int, report: CancelReport
) -> None:
    """Kill a job's worker and cancel the job (both orders): the job ends cancelled and is
    never revived by the workers that come after."""
    workload = Workload(epochs=100_000, n_samples=100)
    network_id, dataset_id = workload.create(api)
    ids = []
    for index in range(rounds):
        victim = cluster.worker()
        job_id = api.submit_job(network_id, dataset_id, **workload.options())
        ids.append(job_id)
        wait_for_epoch(cluster.probe, job_id, 2, timeout=120)
        if index % 2 == 0:
            victim.kill()
            response = api.cancel(job_id)
        else:
            response = api.cancel(job_id)
            victim.kill()
        if response.status_code != 202:
            report.problems_.append(f"cancel of {job_id}: {response.status_code} {response.text}")
    survivor = cluster.worker()
    api.wait_terminal(ids, timeout=_recovery_timeout(cluster))
    # Give any wrongful revival its chance: a requeue sweep, then a newer job that the
    # survivor (which claims the oldest queued job first) runs to its end: by then it has
    # claimed any of ``ids`` that a sweep put back in the queue.
    requeue_expired(cluster.probe.db, max_attempts=cluster.config.max_attempts)
    sentinel = api.submit_job(network_id, dataset_id, **workload.options(epochs=2))
    api.wait_terminal([sentinel], timeout=_recovery_timeout(cluster))
    rows = cluster.probe.jobs(ids)
    models = cluster.probe.models_per_job()
    for job_id in ids:
        row = rows[job_id]
        if row.status == CANCELLED and row.attempts == 1:
            report.race_cancelled += 1
        else:
            report.problems_.append(f"{job_id} after cancel + SIGKILL: {row}")
        if models.get(job_id):
            report.problems_.append(f"{job_id} cancelled during a crash has a model")
    survivor.terminate()


# --------------------------------------------------------------------------- 7. poison


@dataclass
class PoisonReport:
    poison_status: str = ""
    poison_attempts: int = 0
    poison_error: str | None = None
    others_succeeded: int = 0
    others: int = 0
    worker_restarts: int = 0
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def poison_job(
    cluster: Cluster, api: ApiClient, *, others: int, crash_epoch: int = 30
) -> PoisonReport:
    """Every worker dies at the end of epoch ``crash_epoch`` (``epoch:<n>`` hook) and no
    checkpoint is taken before it, so a job longer than that kills every worker that runs
    it, while short jobs never reach it. The long job must end failed after
    ``max_attempts`` with a reason; the short ones keep completing; workers are restarted."""
    report = PoisonReport(others=others)
    workload = Workload(epochs=crash_epoch * 4, n_samples=60)
    network_id, dataset_id = workload.create(api)
    poison = api.submit_job(network_id, dataset_id, **workload.options())
    short = [
        api.submit_job(network_id, dataset_id, **workload.options(epochs=crash_epoch // 3))
        for _ in range(others)
    ]
    pool = WorkerPool(
        cluster, 2, crash_at=f"epoch:{crash_epoch}", BACKPROP_CHECKPOINT_SECONDS="3600"
    )
    try:
        finished = api.wait_terminal(
            [poison, *short], timeout=cluster.config.max_attempts * _recovery_timeout(cluster)
        )
    finally:
        pool.stop()
    report.worker_restarts = pool.restarts
    job = finished[poison]
    report.poison_status = job["status"]
    report.poison_attempts = job["attempts"]
    report.poison_error = job.get("error")
    if job["status"] != FAILED:
        report.problems_.append(f"poison job ended {job['status']}")
    if job["attempts"] != cluster.config.max_attempts:
        report.problems_.append(f"poison job made {job['attempts']} attempts")
    if not job.get("error"):
        report.problems_.append("poison job failed without a reason")
    for job_id in short:
        if finished[job_id]["status"] == SUCCEEDED:
            report.others_succeeded += 1
        else:
            report.problems_.append(f"short job {job_id} ended {finished[job_id]['status']}")
    report.problems_.extend(cluster.probe.invariant_violations())
    return report


# --------------------------------------------------------------------------- 8. restart


@dataclass
class RestartReport:
    jobs: int = 0
    running_at_kill: int = 0
    queued_at_kill: int = 0
    succeeded: int = 0
    orphans: list[int] = field(default_factory=list)
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def _pid_alive(pid: int) -> bool:
    return _process_state(pid) not in ("Z", "X")


def restart_server(cluster: Cluster, *, jobs: int, workers: int = 2) -> RestartReport:
    """kill -9 the whole ``backprop serve`` tree while jobs run and wait; start it again:
    every job finishes once, with one model."""
    report = RestartReport(jobs=jobs)
    server = cluster.serve(workers=workers)
    api = cluster.client(server)
    workload = Workload(epochs=60, n_samples=100)
    network_id, dataset_id = workload.create(api)
    ids = [api.submit_job(network_id, dataset_id, **workload.options()) for _ in range(jobs)]

    def some_running() -> bool:
        rows = cluster.probe.jobs(ids).values()
        return any(r.status == JobStatus.RUNNING and r.epoch >= 3 for r in rows)

    wait_until(some_running, timeout=120, what="a job to be running")
    with cluster.probe.db.read_session() as session:
        worker_pids = list(session.scalars(select(WorkerHeartbeat.pid)))
    server.proc.kill_group()
    rows = cluster.probe.jobs(ids).values()
    report.running_at_kill = sum(r.status == JobStatus.RUNNING for r in rows)
    report.queued_at_kill = sum(r.status == JobStatus.QUEUED for r in rows)
    # SIGKILL of the group is delivered at once; give the kernel a bounded while to end them.
    with suppress(HarnessError):
        wait_until(
            lambda: not any(_pid_alive(pid) for pid in worker_pids),
            timeout=10,
            what="the workers of the killed serve to end",
        )
    report.orphans = [pid for pid in worker_pids if _pid_alive(pid)]
    if report.orphans:
        report.problems_.append(f"worker processes survived kill -9 of serve: {report.orphans}")
    restarted = cluster.serve(workers=workers)
    api = cluster.client(restarted)
    finished = api.wait_terminal(ids, timeout=_recovery_timeout(cluster) + jobs * 30)
    models = cluster.probe.models_per_job()
    for job_id, job in finished.items():
        if job["status"] == SUCCEEDED and models.get(job_id) == 1:
            report.succeeded += 1
        else:
            report.problems_.append(
                f"{job_id} ended {job['status']} with {models.get(job_id)} models"
            )
    restarted.proc.terminate()
    report.problems_ += cluster.server_errors()
    report.problems_.extend(cluster.probe.invariant_violations())
    return report


# --------------------------------------------------------------------------- 9. unsafe files


def _npz_with_member(name: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}.npy", payload)
    return buffer.getvalue()


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _savez(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def unsafe_files() -> dict[str, tuple[str, bytes]]:
    """Hostile or broken uploads: name -> (filename, bytes)."""
    x = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    good = _savez(x=x, y=y)
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = {"a": 1}, [1, 2]
    huge = _npy_header((1_000_000, 1_000_000)) + b"\0" * 64
    ragged = "a,b,label\n1,2,0\n3,4,1\n5,6\n7,8,1,9\n"
    long_line = "a,b,label\n" + ",".join(["1"] * 5_000_000) + "\n1,2,0\n"
    return {
        "npz with an object array": ("obj.npz", _savez(x=obj, y=y[:2])),
        "npz with an object x and y": ("obj2.npz", _savez(x=np.array([x], dtype=object), y=obj)),
        "truncated npz": ("cut.npz", good[: len(good) // 2]),
        "npz cut to its first bytes": ("cut2.npz", good[:30]),
        "npz declaring a 10^12-element array": ("huge.npz", _huge_npz(huge, y)),
        "npz with a corrupt npy header": ("hdr.npz", _npz_with_member("x", b"\x93NUMPY\x01\x00zz")),
        "not a zip at all": ("junk.npz", b"PK\x03\x04" + bytes(range(256)) * 4),
        "csv with a ragged row": ("ragged.csv", ragged.encode()),
        "csv with a 10 MB line": ("long.csv", long_line.encode()),
        "csv with binary garbage": ("bin.csv", bytes(range(256)) * 64),
        "empty file": ("empty.csv", b""),
    }


def _huge_npz(huge_member: bytes, y: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", huge_member)
        member = io.BytesIO()
        np.save(member, y)
        archive.writestr("y.npy", member.getvalue())
    return buffer.getvalue()


@dataclass
class UnsafeInputReport:
    tried: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # "endpoint: input" -> status
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def _check_refusal(report: UnsafeInputReport, what: str, response: httpx.Response) -> None:
    report.tried += 1
    report.answers[what] = response.status_code
    if not 400 <= response.status_code < 500:
        report.problems_.append(f"{what}: {response.status_code} {response.text[:300]}")
        return
    try:
        detail = response.json()["detail"]
        ok = isinstance(detail, list) and all({"loc", "msg", "type"} <= set(d) for d in detail)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        report.problems_.append(f"{what}: error body not in the API's shape: {response.text[:300]}")


def unsafe_inputs(cluster: Cluster, api: ApiClient, base_url: str) -> UnsafeInputReport:
    """Upload every hostile file as a dataset and as model weights: 4xx each, never 5xx,
    and the server stays healthy."""
    report = UnsafeInputReport()
    network_id = api.create_network(input_size=2, hidden=4)
    for name, (filename, content) in unsafe_files().items():
        files = {"file": (filename, content, "application/octet-stream")}
        upload = api.request(
            "POST", "/v1/datasets/upload", files=files, data={"name": "hostile", "target": "label"}
        )
        _check_refusal(report, f"datasets/upload: {name}", upload)
        if filename.endswith(".npz"):
            imported = api.request(
                "POST", "/v1/models/import", files=files, data={"network_id": network_id}
            )
            _check_refusal(report, f"models/import: {name}", imported)
    health = httpx.get(f"{base_url}/healthz", timeout=10)
    if health.status_code != 200:
        report.problems_.append(f"server unhealthy after hostile uploads: {health.status_code}")
    return report
