"""What the soak saw: every HTTP answer by kind and status, predict latencies, memory
samples, and the pools of datasets and models the actors share. Thread-safe."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from _soak_sweeps import Sweeps


@dataclass(frozen=True)
class Sample:
    """One memory sample: seconds since the start, RSS in bytes, the 1-minute load."""

    t: float
    api_pid: int | None
    api_rss: int | None
    worker_rss: dict[int, int]
    load1: float
    api_threads: int | None = None


@dataclass(frozen=True)
class Target:
    """A dataset to train on: its id and its number of features."""

    dataset_id: str
    n_features: int
    uploaded: bool


class Recorder:
    """Counts every answer; keeps predict latencies and the soak's shared state."""

    def __init__(self, seed: int) -> None:
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.server_errors: list[str] = []
        self.transport_errors: list[str] = []
        self.predicts: list[tuple[float, float, int]] = []  # (t, seconds, status)
        self.samples: list[Sample] = []
        self.targets: list[Target] = []
        self.models: list[tuple[str, int]] = []  # (model_id, n_features), oldest first
        self.jobs: dict[str, dict[str, Any]] = {}  # job id -> its latest JSON
        self.events: Counter[str] = Counter()
        self.notes: list[str] = []
        self.rng = random.Random(seed)

    def now(self) -> float:
        return time.monotonic() - self.started

    def call(
        self, http: httpx.Client, kind: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        """One request; its status counted under ``kind``; None on a transport error."""
        try:
            response = http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            with self.lock:
                self.transport_errors.append(f"{self.now():.0f}s {kind} {method} {url}: {exc!r}")
            return None
        with self.lock:
            self.statuses[(kind, response.status_code)] += 1
            if response.status_code >= 500:
                self.server_errors.append(
                    f"{self.now():.0f}s {kind} {method} {url} -> {response.status_code} "
                    f"{response.text[:300]}"
                )
        return response

    def note(self, event: str, detail: str | None = None) -> None:
        with self.lock:
            self.events[event] += 1
            if detail:
                self.notes.append(f"{self.now():.0f}s {event}: {detail}")

    # shared pools ----------------------------------------------------------------------
    def add_target(self, target: Target) -> None:
        with self.lock:
            self.targets.append(target)

    def pick_target(self) -> Target:
        with self.lock:
            return self.rng.choice(self.targets)

    def drop_oldest_upload(self, keep: int) -> Target | None:
        """Remove the oldest uploaded dataset from the pool when more than ``keep`` are."""
        with self.lock:
            uploads = [t for t in self.targets if t.uploaded]
            if len(uploads) <= keep:
                return None
            self.targets.remove(uploads[0])
            return uploads[0]

    def add_model(self, model_id: str, n_features: int) -> None:
        with self.lock:
            self.models.append((model_id, n_features))

    def pick_model(self, rng: random.Random, hot: int) -> tuple[str, int] | None:
        """Mostly one of the ``hot`` newest models, one time in ten any model."""
        with self.lock:
            if not self.models:
                return None
            pool = self.models if rng.random() < 0.1 else self.models[-hot:]
            return rng.choice(pool)

    def track(self, job: dict[str, Any]) -> None:
        with self.lock:
            self.jobs[job["id"]] = job

    def tracked(self, *statuses: str) -> list[dict[str, Any]]:
        with self.lock:
            return [j for j in self.jobs.values() if not statuses or j["status"] in statuses]

    def record_predict(self, t: float, seconds: float, status: int) -> None:
        with self.lock:
            self.predicts.append((t, seconds, status))

    def record_sample(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)


@dataclass
class CancelRecord:
    """One cancel the soak sent and what came of it."""

    job_id: str
    keep_model: bool
    at_epoch: int
    answer: int
    final_status: str = ""
    has_model: bool = False
    checkpoint_epoch: int | None = None  # the job's last checkpoint (None: it had none)
    worker_killed: bool = False  # a worker holding this job was SIGKILLed


@dataclass
class KillRecord:
    """One SIGKILL of a worker and the supervisor's restart of it."""

    t: float
    pid: int
    had_job: str | None
    restarted_after: float | None = None


@dataclass
class Tallies:
    """What the actors did, for the report."""

    cancels: list[CancelRecord] = field(default_factory=list)
    kills: list[KillRecord] = field(default_factory=list)
    uploads: Counter[str] = field(default_factory=Counter)
    deletes: Counter[int] = field(default_factory=Counter)
    sweeps: Sweeps = field(default_factory=Sweeps)
