"""Real processes for fault injection: the suite (tests/faults) and bench/faults.py share it.

A :class:`Cluster` owns one database and every process started on it: ``backprop serve``
(HTTP, optionally with its own workers) and stand-alone ``backprop worker`` processes.
Each process runs in its own process group with stdout+stderr captured to a log file, so
a test can SIGKILL / SIGSTOP a single worker, kill -9 a whole ``serve`` tree, and grep
what every process wrote. :class:`ApiClient` talks HTTP with a key; :class:`DbProbe`
reads the tables directly to check the invariants the API cannot show (one model per
job, lease state, ``PRAGMA integrity_check``).

Nothing here asserts timings: callers get durations back and decide what to do with them.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.engine import npzio
from app.storage.database import Database
from app.storage.tables import Job, JobStatus, Model
from tests.processes import backprop_command, free_port, wait_for, wait_healthy

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# Phrases that must never reach a client or an ERROR log line (SQLite lock contention).
LOCK_ERRORS = ("database is locked", "database table is locked", "deadlock detected")

T = TypeVar("T")


class HarnessError(AssertionError):
    """A process, request or wait did not go as the scenario requires."""


# --------------------------------------------------------------------------- small helpers


def new_key() -> str:
    """A fresh API key in Backprop's format (``bp_`` + 43 URL-safe characters)."""
    return "bp_" + secrets.token_urlsafe(32)


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns something truthy; its value is returned."""
    return wait_for(predicate, what=what, timeout=timeout, interval=interval, error=HarnessError)


def weights_equal(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    """Bit-identical exports: the same array names, each ``np.array_equal``."""
    return a.keys() == b.keys() and all(np.array_equal(a[name], b[name]) for name in a)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


# --------------------------------------------------------------------------- processes


class Proc:
    """One child process in its own process group, output captured to ``log_path``."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str], log_path: Path):
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            self.args,
            env=dict(env),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # pgid == pid: kill the whole tree of `serve`
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to this process only (not its children)."""
        if self.alive():
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL this process (a worker dies mid-whatever it was doing)."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def kill_group(self) -> None:
        """SIGKILL the whole process group (``kill -9`` of serve and its workers)."""
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        self.signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.signal(signal.SIGCONT)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a graceful exit (SIGKILL of the group if it hangs)."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise HarnessError(
                f"{self.name} did not exit within {timeout:.0f} s of SIGTERM"
            ) from None

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"{self.name} still running after {timeout:.0f} s; log tail:\n{self.tail()}"
            ) from None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def close(self) -> None:
        if self.alive():
            self.cont()  # a stopped process cannot die of SIGKILL until continued on some kernels
            self.kill_group()
        else:
            # Children of a dead `serve` may linger in its group.
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        self._log.close()


def error_lines(text_: str) -> list[str]:
    """Lines of a log that report an error: ERROR/CRITICAL records, tracebacks, lock errors."""
    found = []
    for line in text_.splitlines():
        lowered = line.lower()
        if (
            " error " in f" {line} "
            or "ERROR" in line
            or "CRITICAL" in line
            or "Traceback" in line
            or any(phrase in lowered for phrase in LOCK_ERRORS)
        ):
            found.append(line)
    return found


def lock_error_lines(text_: str) -> list[str]:
    return [line for line in text_.splitlines() if any(p in line.lower() for p in LOCK_ERRORS)]


# --------------------------------------------------------------------------- HTTP


class ApiClient:
    """Backprop's REST API with a key; every call refuses a 5xx loudly."""

    def __init__(self, base_url: str, key: str, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )
        self.server_errors: list[str] = []

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)
        if response.status_code >= 500:
            self.server_errors.append(f"{method} {url} -> {response.status_code} {response.text}")
        return response

    def expect(self, status: int, method: str, url: str, **kwargs: Any) -> Any:
        response = self.request(method, url, **kwargs)
        if response.status_code != status:
            raise HarnessError(
                f"{method} {url}: expected {status}, got {response.status_code}: {response.text}"
            )
        return response.json() if response.content else None

    # resources -------------------------------------------------------------------------
    def generate_dataset(
        self, kind: str = "moons", n_samples: int = 200, seed: int = 0, noise: float = 0.1
    ) -> str:
        body = {"kind": kind, "n_samples": n_samples, "noise": noise, "classes": 2, "seed": seed}
        return str(self.expect(201, "POST", "/v1/datasets/generate", json=body)["id"])

    def create_dataset(self, x: list[list[float]], y: list[Any], name: str = "ds") -> str:
        return str(
            self.expect(201, "POST", "/v1/datasets", json={"name": name, "x": x, "y": y})["id"]
        )

    def create_network(
        self, input_size: int = 2, hidden: int = 8, seed: int = 0, name: str = "net"
    ) -> str:
        body = {
            "name": name,
            "input_size": input_size,
            "layers": [
                {"units": hidden, "activation": "tanh"},
                {"units": 1, "activation": "sigmoid"},
            ],
            "seed": seed,
        }
        return str(self.expect(201, "POST", "/v1/networks", json=body)["id"])

    def submit_job(self, network_id: str, dataset_id: str, **options: Any) -> str:
        body = {"network_id": network_id, "dataset_id": dataset_id, **options}
        return str(self.expect(202, "POST", "/v1/jobs", json=body)["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.expect(200, "GET", f"/v1/jobs/{job_id}")
        return result

    def cancel(self, job_id: str, keep_model: bool = False) -> httpx.Response:
        return self.request("POST", f"/v1/jobs/{job_id}/cancel", json={"keep_model": keep_model})

    def weights(self, model_id: str) -> dict[str, np.ndarray]:
        response = self.request("GET", f"/v1/models/{model_id}/weights")
        if response.status_code != 200:
            raise HarnessError(f"weights of {model_id}: {response.status_code} {response.text}")
        return npzio.load(response.content)

    def predict(self, model_id: str, x: list[list[float]]) -> httpx.Response:
        return self.request("POST", f"/v1/models/{model_id}/predict", json={"x": x})

    def wait_terminal(self, job_ids: Iterable[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Poll until every job is succeeded/failed/cancelled; their final JSON by id."""
        pending = list(job_ids)
        done: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while pending:
            for job_id in list(pending):
                body = self.job(job_id)
                if body["status"] in TERMINAL:
                    done[job_id] = body
                    pending.remove(job_id)
            if pending:
                if time.monotonic() > deadline:
                    states = {j: self.job(j)["status"] for j in pending[:10]}
                    raise HarnessError(
                        f"{len(pending)} jobs not finished in {timeout:.0f} s: {states}"
                    )
                time.sleep(0.1)
        return done


# --------------------------------------------------------------------------- database


@dataclass(frozen=True)
class JobRow:
    id: str
    status: str
    attempts: int
    epoch: int
    epochs: int
    checkpoint_epoch: int | None
    worker_id: str | None
    lease_token: str | None
    cancel_requested: bool
    keep_model: bool
    started_at: Any
    finished_at: Any
    error: str | None


class DbProbe:
    """Direct reads of the queue and model tables (never writes)."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)

    def close(self) -> None:
        self.db.dispose()

    def jobs(self, ids: Iterable[str] | None = None) -> dict[str, JobRow]:
        query = select(
            Job.id, Job.status, Job.attempts, Job.epoch, Job.epochs, Job.checkpoint_epoch,
            Job.worker_id, Job.lease_token, Job.cancel_requested, Job.keep_model,
            Job.started_at, Job.finished_at, Job.error,
        )  # fmt: skip
        if ids is not None:
            query = query.where(Job.id.in_(list(ids)))
        with self.db.read_session() as session:
            return {row.id: JobRow(**row._asdict()) for row in session.execute(query)}

    def job(self, job_id: str) -> JobRow:
        rows = self.jobs([job_id])
        if job_id not in rows:
            raise HarnessError(f"no job {job_id} in the database")
        return rows[job_id]

    def models_per_job(self) -> Counter[str]:
        with self.db.read_session() as session:
            rows = session.execute(
                select(Model.job_id, func.count())
                .where(Model.job_id.is_not(None))
                .group_by(Model.job_id)
            )
            return Counter({str(job_id): int(n) for job_id, n in rows})

    def integrity(self) -> str:
        """``PRAGMA integrity_check`` on SQLite ("ok" when sound); "ok" on PostgreSQL."""
        if not self.db.is_sqlite:
            return "ok"
        with self.db.engine.connect() as connection:
            rows = connection.exec_driver_sql("PRAGMA integrity_check").fetchall()
        return "; ".join(str(row[0]) for row in rows)

    def invariant_violations(self) -> list[str]:
        """Everything wrong with "a finished job has exactly one model" across the tables."""
        jobs = self.jobs()
        models = self.models_per_job()
        problems = []
        for job in jobs.values():
            count = models.get(job.id, 0)
            if job.status == JobStatus.SUCCEEDED and count != 1:
                problems.append(f"job {job.id} succeeded with {count} models")
            if count > 1:
                problems.append(f"job {job.id} has {count} models")
            kept = job.status == JobStatus.CANCELLED and job.keep_model
            if count and job.status != JobStatus.SUCCEEDED and not kept:
                problems.append(f"job {job.id} is {job.status} but has a model")
            if job.status in TERMINAL and job.finished_at is None:
                problems.append(f"job {job.id} is {job.status} without finished_at")
        for job_id in models:
            if job_id not in jobs:
                problems.append(f"model of unknown job {job_id}")
        integrity = self.integrity()
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        return problems


# --------------------------------------------------------------------------- PostgreSQL


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the server of ``admin_url``; dropped afterwards."""
    url = make_url(admin_url)
    name = f"bp_faults_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --------------------------------------------------------------------------- the cluster


@dataclass
class Server:
    proc: Proc
    base_url: str
    port: int


@dataclass
class ClusterConfig:
    """The environment every process of a scenario shares (short leases for fast recovery)."""

    database_url: str
    lease_seconds: float = 2.0
    checkpoint_seconds: float = 0.0
    max_attempts: int = 3
    poll_seconds: float = 0.1
    max_active_jobs: int = 10_000
    blob_url: str | None = None  # default: a folder in the cluster's workdir
    extra_env: dict[str, str] = field(default_factory=dict)


class Cluster:
    """One database plus every process started on it; :meth:`close` kills them all."""

    def __init__(self, config: ClusterConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key = new_key()
        self.procs: list[Proc] = []
        self.servers: list[Server] = []
        self._clients: list[ApiClient] = []
        self._counter = 0
        self._probe: DbProbe | None = None

    # environment ---------------------------------------------------------------------
    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
        env.update(
            {
                "BACKPROP_DATABASE_URL": self.config.database_url,
                # Every process of the cluster shares one blob store (never the real home).
                "BACKPROP_DATA_DIR": str(self.workdir / "data"),
                "BACKPROP_BLOB_URL": self.config.blob_url
                or (self.workdir / "data" / "blobs").resolve().as_uri(),
                "BACKPROP_BOOTSTRAP_KEY": self.key,
                "BACKPROP_LEASE_SECONDS": str(self.config.lease_seconds),
                "BACKPROP_CHECKPOINT_SECONDS": str(self.config.checkpoint_seconds),
                "BACKPROP_MAX_ATTEMPTS": str(self.config.max_attempts),
                "BACKPROP_POLL_SECONDS": str(self.config.poll_seconds),
                "BACKPROP_MAX_ACTIVE_JOBS": str(self.config.max_active_jobs),
                "BACKPROP_LOG_LEVEL": "info",
                "PYTHONUNBUFFERED": "1",
                # One BLAS thread per process: 2 cores shared by several workers.
                "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            }
        )
        env.update(self.config.extra_env)
        env.update(overrides)
        return env

    def _name(self, kind: str) -> str:
        self._counter += 1
        return f"{kind}-{self._counter}"

    # processes -----------------------------------------------------------------------
    def migrate(self) -> None:
        from app.storage.migrations import upgrade

        upgrade(self.config.database_url)

    def serve(self, workers: int = 0, port: int | None = None, **env: str) -> Server:
        """``backprop serve`` with ``workers`` worker processes; waits for /healthz."""
        port = port or free_port()
        name = self._name("serve")
        proc = Proc(
            name,
            backprop_command("serve"),
            self.env(
                BACKPROP_PORT=str(port),
                BACKPROP_HOST="127.0.0.1",
                BACKPROP_WORKERS=str(workers),
                **env,
            ),
            self.workdir / f"{name}.log",
        )
        self.procs.append(proc)
        server = Server(proc, f"http://127.0.0.1:{port}", port)
        wait_healthy(server.base_url, proc.popen, logs=proc.tail, error=HarnessError)
        self.servers.append(server)
        return server

    def worker(self, *, burst: bool = False, crash_at: str | None = None, **env: str) -> Proc:
        """A stand-alone ``backprop worker`` (``--burst``: exit when the queue is empty)."""
        name = self._name("worker")
        extra = dict(env)
        if crash_at is not None:
            extra["BACKPROP_TEST_CRASH_AT"] = crash_at
        args = ["worker", "--burst"] if burst else ["worker"]
        proc = Proc(name, backprop_command(*args), self.env(**extra), self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def client(self, server: Server | None = None) -> ApiClient:
        target = server or self.servers[-1]
        client = ApiClient(target.base_url, self.key)
        self._clients.append(client)
        return client

    @property
    def probe(self) -> DbProbe:
        if self._probe is None:
            self._probe = DbProbe(self.config.database_url)
        return self._probe

    # evidence ------------------------------------------------------------------------
    def logs(self) -> dict[str, str]:
        return {proc.name: proc.output() for proc in self.procs}

    def lock_errors(self) -> list[str]:
        return [
            f"{name}: {line}" for name, log in self.logs().items() for line in lock_error_lines(log)
        ]

    def server_errors(self) -> list[str]:
        """5xx answers any client of this cluster received."""
        return [error for client in self._clients for error in client.server_errors]

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for proc in self.procs:
            proc.close()
        if self._probe is not None:
            self._probe.close()


@contextmanager
def cluster(config: ClusterConfig, workdir: Path) -> Iterator[Cluster]:
    """A migrated :class:`Cluster`; every process is killed on exit, whatever happened."""
    instance = Cluster(config, workdir)
    try:
        instance.migrate()
        yield instance
    finally:
        instance.close()


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Workload:
    """The network, data and options of the training jobs a scenario submits."""

    epochs: int = 150
    n_samples: int = 200
    batch_size: int = 16
    hidden: int = 8
    seed: int = 7
    validation_split: float = 0.2

    def create(self, client: ApiClient) -> tuple[str, str]:
        """(network_id, dataset_id) for this workload."""
        dataset_id = client.generate_dataset("moons", n_samples=self.n_samples, seed=self.seed)
        network_id = client.create_network(hidden=self.hidden, seed=self.seed)
        return network_id, dataset_id

    def options(self, **overrides: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "validation_split": self.validation_split,
            "optimizer": {"name": "adam", "learning_rate": 0.01},
        }
        options.update(overrides)
        return options


def wait_for_epoch(probe: DbProbe, job_id: str, epoch: int, timeout: float) -> JobRow:
    """Poll the job row until it has reached ``epoch`` (or ended); the row seen."""

    def reached() -> JobRow | None:
        row = probe.job(job_id)
        return row if row.epoch >= epoch or row.status in TERMINAL else None

    return wait_until(
        reached, timeout=timeout, what=f"{job_id} to reach epoch {epoch}", interval=0.01
    )


def wait_for_attempt(probe: DbProbe, job_id: str, attempt: int, timeout: float) -> JobRow:
    """Poll until a worker has claimed ``job_id`` for the ``attempt``-th time."""

    def claimed() -> JobRow | None:
        row = probe.job(job_id)
        return row if row.attempts >= attempt or row.status in TERMINAL else None

    return wait_until(
        claimed, timeout=timeout, what=f"attempt {attempt} of {job_id}", interval=0.02
    )


def kill_fractions(count: int, seed: int, low: float = 0.1, high: float = 0.9) -> list[float]:
    """Reproducible random kill points, as fractions of a run."""
    rng = random.Random(seed)
    return [rng.uniform(low, high) for _ in range(count)]


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
