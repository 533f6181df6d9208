"""Soak: minutes of mixed load against a real ``backprop serve`` with 2 workers; a verdict.

For ``--minutes`` (default 20), against ``backprop serve`` (the API and 2 supervised
worker processes) on a fresh SQLite file or a fresh PostgreSQL database:

- a feeder keeps 4 training jobs queued or running (a new small network each, 20-400
  epochs on a generated or uploaded dataset: a few seconds to a minute of training);
- 20 client threads predict 1-8 rows on trained models (mostly the 16 newest, one time in
  ten any), pausing ``--think`` seconds between requests;
- every 30 s a dataset upload, npz and CSV in turn; the oldest upload is deleted once more
  than three exist (``backprop gc`` runs every 60 s with a 30 s grace);
- every 45 s a running job is cancelled, with and without ``keep_model`` in turn;
- every 120 s a worker is SIGKILLed (one holding a job when there is one): the supervisor
  restarts it, the job's lease (the shipped 30 s) expires and another attempt resumes it;
- from minute 1, a sweep every 4 minutes through ``/v1/sweeps`` (a 4-trial grid and a
  6-config successive halving in turn; every third cancelled midway), and every other
  SIGKILL hits a worker training a trial when one is (``_soak_sweeps``).

Then the load stops, every job is drained to a terminal state, and the soak checks: no
5xx and no refused request; every job terminal with at most one model, the tables
consistent; every sweep ended as asked (trials, models, best); API and worker RSS
(sampled every 10 s) at most +10 % between minute 5 (a quarter of the run) and the last
minute; predict p99 of the last quarter at most 1.5 x
that of the second quarter; every killed worker restarted. One verdict per database.

    .venv/bin/python bench/soak.py --minutes 3                  # SQLite smoke run
    BACKPROP_TEST_POSTGRES_URL=postgresql+psycopg://u@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/soak.py --database postgres     # a fresh database there
"""

from __future__ import annotations

import _service  # before numpy: re-executes without the BLAS overrides

_service.clean_blas_env()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _soak_actors as actors  # noqa: E402
import _soak_sweeps as sweeps  # noqa: E402
from _soak_procs import serve_tree  # noqa: E402
from _soak_record import Recorder, Tallies, Target  # noqa: E402
from _soak_report import Ending, as_json, print_report, verdict  # noqa: E402

from tests.faults.harness import (  # noqa: E402
    Cluster,
    ClusterConfig,
    cluster,
    error_lines,
    postgres_database,
    wait_until,
)

# The shipped defaults of app.config, except a garbage collection every minute.
SETTINGS: dict[str, Any] = {
    "lease_seconds": 30.0,
    "checkpoint_seconds": 10.0,
    "max_attempts": 3,
    "poll_seconds": 0.2,
    "max_active_jobs": 20,
    "extra_env": {"BACKPROP_GC_INTERVAL_SECONDS": "60", "BACKPROP_GC_GRACE_SECONDS": "30"},
}
WORKERS = 2
IDS = re.compile(r"\b[a-z]{2,4}_[0-9a-f]{8,}\b|\b[\w.-]+:\d+:[0-9a-f]+\b")  # job ids, worker ids


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average {_service.load_average()}"


def warm_up(ctx: actors.Context, c: Cluster) -> None:
    """Two generated datasets in the pool and one trained model before the clock starts."""
    with ctx.http() as http:
        for kind, n in (("moons", 1000), ("circles", 2000)):
            body = {"kind": kind, "n_samples": n, "noise": 0.15, "classes": 2, "seed": 1}
            response = ctx.rec.call(
                http, "generate dataset", "POST", "/v1/datasets/generate", json=body
            )
            if response is None or response.status_code != 201:
                raise RuntimeError(f"generate {kind}: {response and response.text}")
            ctx.rec.add_target(Target(response.json()["id"], 2, uploaded=False))
        job = actors.submit_job(ctx, http, random.Random(ctx.seed))
        if job is None:
            raise RuntimeError("the first job was refused")

        def finished() -> bool:
            actors.refresh_jobs(ctx, http)
            return bool(ctx.rec.models)

        wait_until(finished, timeout=600, what="the first model", interval=0.5)


def drain(ctx: actors.Context, timeout: float) -> float:
    """Wait until no tracked job nor sweep is active; the seconds it took."""
    began = time.monotonic()
    with ctx.http() as http:
        while time.monotonic() - began < timeout:
            actors.refresh_jobs(ctx, http)
            for record in ctx.tallies.sweeps.active():
                sweeps.refresh(ctx, http, record)
            if not ctx.rec.tracked(*actors.ACTIVE) and not ctx.tallies.sweeps.active():
                break
            time.sleep(1.0)
    return time.monotonic() - began


def examine(ctx: actors.Context, c: Cluster) -> Ending:
    """Every job's end state from the tables, the cancels' outcomes, the logs' errors."""
    ending = Ending()
    rows = c.probe.jobs()
    models = c.probe.models_per_job()
    for row in rows.values():
        ending.statuses[str(row.status)] += 1
        ending.attempts[row.attempts] += 1
        if row.status not in actors.TERMINAL:
            ending.not_terminal.append(f"{row.id}: {row.status}, epoch {row.epoch}/{row.epochs}")
        if row.status == "failed":
            ending.failures[(row.error or "")[:160]] += 1
    ending.most_models_per_job = max(models.values(), default=0)
    with ctx.http() as http:  # the sweeps' final reads
        for record in ctx.tallies.sweeps.all():
            sweeps.refresh(ctx, http, record)
    trials = ctx.tallies.sweeps.trial_jobs()
    ending.trials = len(trials & rows.keys())
    killed = {k.had_job for k in ctx.tallies.kills if k.had_job}
    statuses = {job_id: str(row.status) for job_id, row in rows.items()}
    ending.sweep_checks = sweeps.checks(ctx.tallies.sweeps, statuses, dict(models), killed)
    ending.violations = c.probe.invariant_violations()
    for cancel in ctx.tallies.cancels:
        cancel.final_status = str(rows[cancel.job_id].status)
        cancel.has_model = models.get(cancel.job_id, 0) > 0
        cancel.checkpoint_epoch = rows[cancel.job_id].checkpoint_epoch
        cancel.worker_killed = cancel.job_id in killed
    seen = set()
    for name, log in c.logs().items():
        for line in log.splitlines():
            if "WARNING" in line:
                message = line.split("WARNING", 1)[1].strip(" :]")[:120]
                masked = re.sub(r"\d+", "N", IDS.sub("<id>", message))
                ending.log_warnings[f"{name}: {masked}"] += 1
        for line in error_lines(log):
            key = line.split(" ", 2)[-1][:200]
            if key not in seen:
                seen.add(key)
                ending.log_errors.append(f"{name}: {line[:300]}")
    return ending


def progress(ctx: actors.Context) -> None:
    rec = ctx.rec
    done = Counter(j["status"] for j in rec.tracked())
    print(
        f"  {rec.now() / 60:5.1f} min: {len(rec.predicts)} predicts, jobs {dict(done)}, "
        f"{len(ctx.tallies.kills)} kills, {len(rec.server_errors)} 5xx, "
        f"{len(rec.transport_errors)} transport errors, load {_service.load_average()}",
        file=sys.stderr,
        flush=True,
    )


def soak(url: str, workdir: Path, args: argparse.Namespace, title: str) -> dict[str, Any]:
    options = actors.Options(clients=args.clients, think=args.think, duration=args.minutes * 60)
    with cluster(ClusterConfig(url, **SETTINGS), workdir) as c:
        server = c.serve(workers=WORKERS)
        wait_until(
            lambda: len(serve_tree(server.proc.pid).workers) == WORKERS,
            timeout=60,
            what="the workers",
        )
        ctx = actors.Context(
            server.base_url, c.key, server.proc.pid, c.probe, Recorder(args.seed), Tallies(),
            options, threading.Event(), args.seed,
        )  # fmt: skip
        load_before = uptime()
        warm_up(ctx, c)
        ctx.rec.started = time.monotonic()
        bodies = [
            actors.feeder, actors.sampler, actors.uploader, actors.canceller, actors.killer,
            sweeps.sweeper,
        ]  # fmt: skip
        threads = [threading.Thread(target=body, args=(ctx,), daemon=True) for body in bodies]
        threads += [
            threading.Thread(target=actors.predictor, args=(ctx, i), daemon=True)
            for i in range(options.clients)
        ]
        for thread in threads:
            thread.start()
        end = ctx.rec.started + args.minutes * 60
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(60.0, left))
            progress(ctx)
        ctx.stop.set()
        for thread in threads:
            thread.join(timeout=120)
        load_after = uptime()
        drained = drain(ctx, args.drain_timeout)
        ending = examine(ctx, c)
    result = verdict(
        ctx.rec,
        ctx.tallies,
        ending,
        args.minutes,
        math.ceil(args.minutes * 60 / options.kill_every) - 1,
    )
    conditions = (
        f"{args.minutes} minutes; `backprop serve` with {WORKERS} workers on {title}; "
        f"lease {SETTINGS['lease_seconds']:g} s, checkpoints every "
        f"{SETTINGS['checkpoint_seconds']:g} s, "
        f"max attempts {SETTINGS['max_attempts']}, gc every 60 s (grace 30 s); {options.clients} "
        f"predict clients (think {options.think:g} s), {options.active_jobs} jobs kept active; "
        f"drained in {drained:.0f} s.\n"
        f"machine: {_service.cpu_model()}, {os.cpu_count()} cores; "
        f"before: `{load_before}`; after: `{load_after}`"
    )
    print_report(title, ctx.rec, ctx.tallies, ending, args.minutes, result, conditions)
    sys.stdout.flush()
    return {
        "target": title,
        "passed": result.passed,
        **as_json(ctx.rec, ctx.tallies, ending, args.minutes),
    }


def run_target(database: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"backprop-soak-{database}-") as tmp:
        workdir = Path(tmp)
        if database == "sqlite":
            return soak(f"sqlite:///{workdir / 'soak.db'}", workdir, args, "SQLite")
        if not args.postgres_url:
            raise SystemExit(
                "--database postgres needs --postgres-url or BACKPROP_TEST_POSTGRES_URL"
            )
        with postgres_database(args.postgres_url) as url:
            return soak(url, workdir, args, "PostgreSQL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=20, help="length of the load (default 20)")
    parser.add_argument(
        "--database", choices=["sqlite", "postgres", "both"], default="sqlite", help="target(s)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BACKPROP_TEST_POSTGRES_URL"),
        help="a PostgreSQL server (a fresh database is made and dropped); "
        "default: $BACKPROP_TEST_POSTGRES_URL",
    )
    parser.add_argument("--clients", type=int, default=20, help="predict client threads")
    parser.add_argument(
        "--think", type=float, default=0.05, help="pause between a client's predicts (s)"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=900.0, help="seconds to drain the jobs"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="write every raw figure here")
    args = parser.parse_args(argv)
    if args.minutes < 2:
        parser.error("--minutes must be at least 2 (a worker is killed every 2 minutes)")
    targets = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    print(f"Soak of Backprop, {args.minutes} min per target; `{uptime()}`", flush=True)
    results = [run_target(database, args) for database in targets]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(
        "\nVerdicts: "
        + ", ".join(f"{r['target']} {'PASS' if r['passed'] else 'FAIL'}" for r in results)
    )
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
