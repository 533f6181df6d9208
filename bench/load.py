"""Bounded load on a local Backprop: predict throughput/latency and job pickup latency.

1. Predict: a second process (this script with ``--client``) sends ``POST
   /v1/models/{id}/predict`` from several threads, bounded by a request count AND a time
   limit, first with the workers idle, then while every worker trains; it reports
   requests/s with p50 / p99 latency.
2. Pickup: with idle workers, one tiny job at a time; latency = the job's ``started_at``
   minus its ``created_at`` (both stamped by the database host's clock).

Loopback only: the service binds 127.0.0.1 and the client talks to nothing else.

    .venv/bin/python bench/load.py                       # SQLite, 2 workers
    .venv/bin/python bench/load.py --requests 5000 --seconds 20 --concurrency 8
    .venv/bin/python bench/load.py --postgres-url postgresql+psycopg://u@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from tests.faults.harness import (  # noqa: E402
    ApiClient,
    Cluster,
    ClusterConfig,
    Workload,
    cluster,
    percentile,
    postgres_database,
)

LOOPBACK = ("http://127.0.0.1:", "http://localhost:")
# The shipped defaults of app.config (not the fault suite's short leases).
PRODUCT_DEFAULTS: dict[str, Any] = {
    "lease_seconds": 30.0,
    "checkpoint_seconds": 10.0,
    "poll_seconds": 0.2,
}


# --------------------------------------------------------------------------- the client process


def client_main(args: argparse.Namespace) -> int:
    """Send predicts until ``requests`` are done or ``seconds`` have passed; print JSON."""
    if not args.url.startswith(LOOPBACK):
        raise SystemExit("refusing to load anything but a loopback address")
    x = np.random.default_rng(0).normal(size=(args.rows, 2)).round(4).tolist()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    remaining = [args.requests]
    deadline = time.monotonic() + args.seconds

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or time.monotonic() > deadline:
                return False
            remaining[0] -= 1
            return True

    def run() -> None:
        headers = {"Authorization": f"Bearer {args.key}"}
        with httpx.Client(base_url=args.url, headers=headers, timeout=60) as http:
            while take():
                began = time.perf_counter()
                response = http.post(f"/v1/models/{args.model}/predict", json={"x": x})
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "seconds": wall,
                "rps": len(latencies) / wall if wall else 0.0,
                "p50_ms": percentile(latencies, 50) * 1000,
                "p99_ms": percentile(latencies, 99) * 1000,
                "statuses": statuses,
            }
        )
    )
    return 0


def run_client(
    c: Cluster, base_url: str, model_id: str, args: argparse.Namespace
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--client",
        "--url",
        base_url,
        "--key",
        c.key,
        "--model",
        model_id,
        "--requests",
        str(args.requests),
        "--seconds",
        str(args.seconds),
        "--concurrency",
        str(args.concurrency),
        "--rows",
        str(args.rows),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=args.seconds + 120, check=True
    )
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


# --------------------------------------------------------------------------- the driver


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pickup_latencies(api: ApiClient, network_id: str, dataset_id: str, jobs: int) -> list[float]:
    """Submit one tiny job at a time to idle workers: started_at - created_at, seconds."""
    latencies = []
    for _ in range(jobs):
        time.sleep(0.5)  # let the workers go back to idle polling
        job_id = api.submit_job(network_id, dataset_id, epochs=1, validation_split=0.0)
        job = api.wait_terminal([job_id], timeout=120)[job_id]
        if job["status"] != "succeeded":
            raise RuntimeError(f"pickup job {job_id} ended {job['status']}: {job.get('error')}")
        latencies.append(stamp(job["started_at"]) - stamp(job["created_at"]))
    return latencies


def driver_main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="backprop-load-") as tmp:
        workdir = Path(tmp)
        if args.postgres_url:
            with postgres_database(args.postgres_url) as url:
                return drive(ClusterConfig(url, **PRODUCT_DEFAULTS), workdir, args)
        sqlite_url = f"sqlite:///{workdir / 'load.db'}"
        return drive(ClusterConfig(sqlite_url, **PRODUCT_DEFAULTS), workdir, args)


def drive(config: ClusterConfig, workdir: Path, args: argparse.Namespace) -> int:
    with cluster(config, workdir) as c:
        server = c.serve(workers=args.workers)
        api = c.client(server)
        network_id, dataset_id = Workload(n_samples=400).create(api)
        first = api.submit_job(network_id, dataset_id, epochs=20)
        model_id = api.wait_terminal([first], timeout=120)[first]["model_id"]

        idle = run_client(c, server.base_url, model_id, args)

        # Keep every worker busy: long jobs, cancelled once the measurement is done.
        busy = [
            api.submit_job(network_id, dataset_id, epochs=100_000, batch_size=8)
            for _ in range(args.workers)
        ]
        deadline = time.monotonic() + 60
        while sum(api.job(j)["status"] == "running" for j in busy) < args.workers:
            if time.monotonic() > deadline:
                raise RuntimeError("the training jobs did not all start")
            time.sleep(0.1)
        training = run_client(c, server.base_url, model_id, args)
        for job_id in busy:
            api.cancel(job_id)
        api.wait_terminal(busy, timeout=120)

        pickups = pickup_latencies(api, network_id, dataset_id, args.pickups)
        backend = "PostgreSQL" if c.probe.db.engine.dialect.name == "postgresql" else "SQLite"

    print(
        f"Backend {backend}; `backprop serve` with {args.workers} workers; "
        f"{os.cpu_count()} cores; predict of {args.rows} rows, {args.concurrency} client "
        f"threads in a second process, at most {args.requests} requests / {args.seconds:g} s "
        "per phase.\n"
    )
    print("| Phase | Requests | req/s | p50 ms | p99 ms | Statuses |")
    print("|---|---|---|---|---|---|")
    for name, figures in (("predict, workers idle", idle), ("predict, workers training", training)):
        print(
            f"| {name} | {figures['requests']} | {figures['rps']:.0f} | "
            f"{figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} | {figures['statuses']} |"
        )
    print(
        f"\nJob pickup (submit -> running, idle workers, poll "
        f"{config.poll_seconds:g} s): {len(pickups)} jobs, p50 "
        f"{percentile(pickups, 50) * 1000:.0f} ms, p99 {percentile(pickups, 99) * 1000:.0f} ms, "
        f"max {max(pickups) * 1000:.0f} ms"
    )
    errors = sum(
        n for s, n in {**idle["statuses"], **training["statuses"]}.items() if int(s) >= 500
    )
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=3000, help="max predicts per phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="max seconds per phase")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--rows", type=int, default=16, help="rows per predict")
    parser.add_argument("--workers", type=int, default=2, help="workers of `backprop serve`")
    parser.add_argument("--pickups", type=int, default=20, help="jobs for the pickup latency")
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="a PostgreSQL server URL (a fresh database is created); default: SQLite",
    )
    args = parser.parse_args(argv)
    return client_main(args) if args.client else driver_main(args)


if __name__ == "__main__":
    sys.exit(main())
