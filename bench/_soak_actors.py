"""The soak's actors, one thread each: a job feeder, predict clients, an uploader, a
canceller, a worker killer, a memory sampler and (when the service has sweeps) the
sweeper of ``_soak_sweeps``.

Every actor loops until ``ctx.stop`` is set, sends its requests through
:meth:`Recorder.call` (which counts every status and every 5xx) and never raises on an
unexpected answer: the report judges the counts.
"""

from __future__ import annotations

import io
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from _soak_procs import rss_bytes, serve_tree, thread_count, worker_pid
from _soak_record import CancelRecord, KillRecord, Recorder, Sample, Tallies, Target

from tests.faults.harness import DbProbe

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")
HIDDEN = ([8], [16], [32], [16, 16], [32, 16])


@dataclass(frozen=True)
class Options:
    """Rates and sizes of the load (intervals in seconds)."""

    clients: int = 20
    think: float = 0.05
    hot_models: int = 16
    active_jobs: int = 4
    epochs: tuple[int, int] = (20, 400)
    upload_every: float = 30.0
    cancel_every: float = 45.0
    kill_every: float = 120.0
    sample_every: float = 10.0
    sweep_at: float = 100.0  # the first sweep: 20 s before the first kill, as every one
    sweep_every: float = 240.0  # then one every so often (see _soak_sweeps.schedule)
    duration: float = 1200.0  # the load's length: no kill at or after it


@dataclass
class Context:
    """What every actor shares."""

    base_url: str
    key: str
    serve_pid: int
    probe: DbProbe
    rec: Recorder
    tallies: Tallies
    options: Options
    stop: threading.Event
    seed: int
    refreshing: threading.Lock = field(default_factory=threading.Lock)

    def http(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60.0)


# --------------------------------------------------------------------------- jobs


def refresh_jobs(ctx: Context, http: httpx.Client) -> None:
    """Bring the tracked in-flight jobs up to date; a finished job's model joins the pool."""
    with ctx.refreshing:  # one at a time: a model joins the pool once
        _refresh_jobs(ctx, http)


def _refresh_jobs(ctx: Context, http: httpx.Client) -> None:
    seen: dict[str, dict[str, Any]] = {}
    for status in ACTIVE:
        response = ctx.rec.call(
            http, "list jobs", "GET", "/v1/jobs", params={"status": status, "limit": 100}
        )
        if response is None or response.status_code != 200:
            return
        seen.update({job["id"]: job for job in response.json()["items"]})
    for job in ctx.rec.tracked(*ACTIVE):
        latest = seen.get(job["id"])
        if latest is None:
            response = ctx.rec.call(http, "get job", "GET", f"/v1/jobs/{job['id']}")
            if response is None or response.status_code != 200:
                continue
            latest = response.json()
            latest.pop("history", None)
            if latest["status"] in TERMINAL and latest.get("model_id"):
                ctx.rec.add_model(latest["model_id"], job["n_features"])
        ctx.rec.track({**latest, "n_features": job["n_features"]})


def submit_job(ctx: Context, http: httpx.Client, rng: random.Random) -> dict[str, Any] | None:
    """A fresh network and a job on a random dataset of the pool."""
    target = ctx.rec.pick_target()
    hidden = rng.choice(HIDDEN)
    activation = rng.choice(["tanh", "relu"])
    layers = [{"units": n, "activation": activation} for n in hidden]
    network = {
        "name": f"soak-{rng.randrange(10**6)}",
        "input_size": target.n_features,
        "layers": [*layers, {"units": 1, "activation": "sigmoid"}],
        "seed": rng.randrange(1000),
    }
    response = ctx.rec.call(http, "create network", "POST", "/v1/networks", json=network)
    if response is None or response.status_code != 201:
        return None
    low, high = ctx.options.epochs
    body = {
        "network_id": response.json()["id"],
        "dataset_id": target.dataset_id,
        "epochs": int(np.exp(rng.uniform(np.log(low), np.log(high)))),
        "batch_size": rng.choice([16, 32, 64]),
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "validation_split": 0.2,
        "seed": rng.randrange(1000),
    }
    response = ctx.rec.call(http, "submit job", "POST", "/v1/jobs", json=body)
    if response is None or response.status_code != 202:
        # 404: the uploader deleted the dataset in between (a race the soak allows).
        return None
    job = {**response.json(), "n_features": target.n_features}
    job.pop("history", None)
    ctx.rec.track(job)
    return job


def feeder(ctx: Context) -> None:
    """Keep ``active_jobs`` of the soak's jobs queued or running."""
    rng = random.Random(ctx.seed)
    with ctx.http() as http:
        while not ctx.stop.wait(1.0):
            refresh_jobs(ctx, http)
            missing = ctx.options.active_jobs - len(ctx.rec.tracked(*ACTIVE))
            for _ in range(max(0, missing)):
                submit_job(ctx, http, rng)


# --------------------------------------------------------------------------- predict


def predictor(ctx: Context, index: int) -> None:
    """One client: predict 1-8 rows on a random model, pause ``think`` s, again."""
    rng = random.Random(ctx.seed * 1000 + index)
    with ctx.http() as http:
        while not ctx.stop.is_set():
            picked = ctx.rec.pick_model(rng, ctx.options.hot_models)
            if picked is None:
                ctx.stop.wait(0.2)
                continue
            model_id, n_features = picked
            x = [
                [round(rng.gauss(0, 1), 4) for _ in range(n_features)]
                for _ in range(rng.randint(1, 8))
            ]
            t = ctx.rec.now()
            began = time.perf_counter()
            response = ctx.rec.call(
                http, "predict", "POST", f"/v1/models/{model_id}/predict", json={"x": x}
            )
            if response is not None:
                ctx.rec.record_predict(t, time.perf_counter() - began, response.status_code)
            ctx.stop.wait(ctx.options.think)


# --------------------------------------------------------------------------- uploads


def upload_body(kind: str, rows: int, rng: np.random.Generator) -> tuple[str, bytes, str]:
    """(file name, bytes, content type) of a 4-feature binary dataset as npz or CSV."""
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] + x[:, 2] - 0.5 * x[:, 3] > 0).astype(np.int64)
    if kind == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y)
        return "data.npz", buffer.getvalue(), "application/octet-stream"
    lines = ["f0,f1,f2,f3,label"]
    lines += [
        ",".join(f"{v:.5f}" for v in row) + f",{label}" for row, label in zip(x, y, strict=True)
    ]
    return "data.csv", ("\n".join(lines) + "\n").encode(), "text/csv"


def uploader(ctx: Context) -> None:
    """Upload an npz or a CSV (in turn) every ``upload_every`` s; delete the oldest upload
    once more than three are in the pool (409 while a job uses it)."""
    rng = np.random.default_rng(ctx.seed)
    kinds = ["npz", "csv"]
    with ctx.http() as http:
        turn = 0
        while not ctx.stop.wait(ctx.options.upload_every):
            kind = kinds[turn % 2]
            turn += 1
            filename, data, content_type = upload_body(
                kind, int(rng.choice([1000, 2000, 4000])), rng
            )
            files = {"file": (filename, data, content_type)}
            response = ctx.rec.call(
                http,
                f"upload {kind}",
                "POST",
                "/v1/datasets/upload",
                files=files,
                data={"name": f"soak-{kind}-{turn}"},
            )
            ctx.tallies.uploads[f"{kind} {response.status_code if response else 'error'}"] += 1
            if response is not None and response.status_code == 201:
                ctx.rec.add_target(Target(response.json()["id"], 4, uploaded=True))
            old = ctx.rec.drop_oldest_upload(keep=3)
            if old is not None:
                response = ctx.rec.call(
                    http, "delete dataset", "DELETE", f"/v1/datasets/{old.dataset_id}"
                )
                if response is not None:
                    ctx.tallies.deletes[response.status_code] += 1


# --------------------------------------------------------------------------- cancels


def canceller(ctx: Context) -> None:
    """Every ``cancel_every`` s cancel one running job, with and without keep_model in turn."""
    rng = random.Random(ctx.seed + 1)
    with ctx.http() as http:
        keep = False
        while not ctx.stop.wait(ctx.options.cancel_every):
            refresh_jobs(ctx, http)  # the feeder's view may be a second old
            running = [j for j in ctx.rec.tracked("running") if j.get("epoch", 0) >= 1]
            if not running:
                ctx.rec.note("cancel skipped: no running job")
                continue
            job = rng.choice(running)
            keep = not keep
            response = ctx.rec.call(
                http, "cancel", "POST", f"/v1/jobs/{job['id']}/cancel", json={"keep_model": keep}
            )
            answer = response.status_code if response is not None else 0
            ctx.tallies.cancels.append(
                CancelRecord(job["id"], keep, int(job.get("epoch", 0)), answer)
            )


# --------------------------------------------------------------------------- SIGKILL


TRIAL_WAIT_S = 30.0


def busy_workers(ctx: Context) -> dict[int | None, str]:
    """Worker pid -> the id of the job it holds, for every running job."""
    return {
        worker_pid(row.worker_id): row.id
        for row in ctx.probe.jobs().values()
        if row.status == "running"
    }


def killer(ctx: Context) -> None:
    """Every ``kill_every`` s SIGKILL a worker (one that holds a running job if any; every
    other kill one training a sweep's trial, see above) and time the supervisor's restart
    of it."""
    rng = random.Random(ctx.seed + 2)
    kills = 0
    # On a fixed schedule (2, 4, 6... minutes), whatever each restart took.
    while (kills + 1) * ctx.options.kill_every < ctx.options.duration:
        if ctx.stop.wait(max(0.0, (kills + 1) * ctx.options.kill_every - ctx.rec.now())):
            return
        kills += 1
        tree = serve_tree(ctx.serve_pid)
        if not tree.workers:
            ctx.rec.note("kill skipped: no worker alive", "serve has no worker child")
            continue
        busy = busy_workers(ctx)
        on_trials: list[int] = []
        # Every other kill, a worker training a sweep's trial: while a sweep is active,
        # wait up to TRIAL_WAIT_S for one to hold a trial.
        hit_trials = sum(k.had_job in ctx.tallies.sweeps.trial_jobs() for k in ctx.tallies.kills)
        if 2 * hit_trials <= len(ctx.tallies.kills):
            waited = time.monotonic() + TRIAL_WAIT_S
            while True:
                trials = ctx.tallies.sweeps.trial_jobs()
                on_trials = [pid for pid in tree.workers if busy.get(pid) in trials]
                if on_trials or not ctx.tallies.sweeps.active() or time.monotonic() > waited:
                    break
                if ctx.stop.wait(1.0):
                    return
                tree, busy = serve_tree(ctx.serve_pid), busy_workers(ctx)
        candidates = on_trials or [pid for pid in tree.workers if pid in busy] or list(tree.workers)
        victim = rng.choice(candidates)
        record = KillRecord(ctx.rec.now(), victim, busy.get(victim))
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue
        ctx.tallies.kills.append(record)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not ctx.stop.is_set():
            now = serve_tree(ctx.serve_pid).workers
            if len(now) >= len(tree.workers) and victim not in now:
                record.restarted_after = ctx.rec.now() - record.t
                break
            time.sleep(0.2)


# --------------------------------------------------------------------------- memory


def sampler(ctx: Context) -> None:
    """RSS of the API and of each worker every ``sample_every`` s, with the load average."""
    while True:
        tree = serve_tree(ctx.serve_pid)
        workers = {pid: rss for pid in tree.workers if (rss := rss_bytes(pid)) is not None}
        api_rss = rss_bytes(tree.api) if tree.api is not None else None
        threads = thread_count(tree.api) if tree.api is not None else None
        load1 = os.getloadavg()[0]
        ctx.rec.record_sample(Sample(ctx.rec.now(), tree.api, api_rss, workers, load1, threads))
        if ctx.stop.wait(ctx.options.sample_every):
            return
