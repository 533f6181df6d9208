"""Predict throughput and latency of ``backprop serve`` beside a bare FastAPI endpoint.

Trains a 784-256-128-10 model through the service (a short job), then loads
``POST /v1/models/{id}/predict`` with 1 and 256 rows per request from 16 concurrent
keep-alive clients in a second process on loopback, for a fixed time per case. In the same
run, a bare FastAPI app under uvicorn with the same settings (1 process) answers the same
requests with a constant response of the same size: the serving limit of the stack.

Targets (1 row): predict requests/s >= 0.7x the bare endpoint's, p99 <= 2x the bare p99.

Predict is measured twice per row count: with the rows as JSON (the target's case), and
with the same rows as float32 in a .npy body (``Content-Type: application/x-npy``), the
format for clients that send many rows; the script checks that both answer alike.

The load generator is wrk (``apt-get install wrk``; one thread, 16 connections) when it is
on PATH, else an asyncio httpx client in a separate process (``--client httpx``).

    .venv/bin/python bench/serve.py [--quick] [--seconds 10] [--client wrk|httpx]
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402

SIZES = [784, 256, 128, 10]
CONNECTIONS = 16
ROW_COUNTS = (1, 256)
TARGET_RPS_RATIO = 0.7
TARGET_P99_RATIO = 2.0

# --------------------------------------------------------------------------- bare server


def bare_app() -> FastAPI:
    """The serving limit: reads the body, answers a precomputed response of the same size.

    uvicorn factory (``serve:bare_app``); the responses come from $BENCH_BARE_CONSTANTS.
    """
    stored = json.loads(Path(os.environ["BENCH_BARE_CONSTANTS"]).read_text())
    constants = {int(rows): text.encode() for rows, text in stored.items()}
    app = FastAPI()

    @app.post("/bare/{rows}")
    async def bare(rows: int, request: Request) -> Response:
        await request.body()
        return Response(content=constants[rows], media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def start_bare(constants_path: Path, port: int, log_level: str, log: Any) -> Any:
    """The bare app under uvicorn, started exactly as ``backprop serve`` starts the API
    (app/jobs/supervisor.py: ``python -m uvicorn ... --factory --host --port --log-level``)."""
    env = {**os.environ, "BENCH_BARE_CONSTANTS": str(constants_path)}
    cmd = [
        sys.executable, "-m", "uvicorn", "serve:bare_app", "--factory",
        "--app-dir", str(Path(__file__).resolve().parent),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level,
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


# --------------------------------------------------------------------------- load generators


WRK_SCRIPT = """
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then wrk.headers["Authorization"] = auth end

done = function(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"mean_us": %f, "max_us": %d, "errors": %d, "non_2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def run_wrk(url: str, body_path: Path, auth: str, seconds: float, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    env = {
        "BENCH_BODY": str(body_path),
        "BENCH_AUTH": auth,
        "BENCH_CONTENT_TYPE": content_type(body_path),
        "PATH": "/usr/bin:/bin",
    }
    cmd = [
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    for line in out.stderr.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            seconds_run = raw["duration_us"] / 1e6
            return {
                "requests_per_s": raw["requests"] / seconds_run,
                "p50_ms": raw["p50_us"] / 1e3,
                "p99_ms": raw["p99_us"] / 1e3,
                "requests": raw["requests"],
                "errors": raw["errors"] + raw["non_2xx"],
            }
    raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def content_type(body_path: Path) -> str:
    """A body file's media type: .npy files are sent as application/x-npy."""
    return "application/x-npy" if body_path.suffix == ".npy" else "application/json"


async def _httpx_load(
    url: str, body: bytes, media_type: str, auth: str, seconds: float
) -> dict[str, Any]:
    import httpx

    headers = {"Content-Type": media_type}
    if auth:
        headers["Authorization"] = auth
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        deadline = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1e3
    return {
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "requests": len(latencies),
        "errors": errors,
    }


def run_httpx(url: str, body_path: Path, auth: str, seconds: float) -> dict[str, Any]:
    """The httpx client, in a separate process (never the server's)."""
    cmd = [
        sys.executable, __file__, "--_client", url, "--_body", str(body_path),
        "--_auth", auth, "--seconds", str(seconds),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(
    client_kind: str, url: str, body_path: Path, auth: str, seconds: float, workdir: Path
) -> dict[str, Any]:
    if client_kind == "wrk":
        return run_wrk(url, body_path, auth, seconds, workdir)
    return run_httpx(url, body_path, auth, seconds)


# --------------------------------------------------------------------------- setup


def train_model(service: _service.Service) -> str:
    """A 784-256-128-10 classifier trained by a short job; returns its model id."""
    import io

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2_000, SIZES[0]), dtype=np.float32)
    y = (x @ rng.standard_normal((SIZES[0], SIZES[-1]), dtype=np.float32)).argmax(axis=1)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y.astype(np.int64))
    with service.client() as client:
        dataset = _service.upload_npz(client, name="serve-bench", npz=buffer.getvalue())
        network = _service.create_network(
            client, name="serve-bench", sizes=SIZES, hidden="relu", output="softmax"
        )
        body = {"network_id": network["id"], "dataset_id": dataset["id"], "epochs": 1}
        job = _service.submit_job(client, body)
        job = _service.wait_for_job(client, job["id"], timeout=300.0)
    return str(job["model_id"])


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per case")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per case")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per case")
    parser.add_argument("--client", choices=("wrk", "httpx"), default="")
    parser.add_argument("--json", default="")
    parser.add_argument("--_client", default="", help=argparse.SUPPRESS)
    parser.add_argument("--_body", default="", help=argparse.SUPPRESS)
    parser.add_argument("--_auth", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--log-level",
        default="info",
        help="BACKPROP_LOG_LEVEL of the service, and --log-level of the bare uvicorn "
        "(default info, the service's default: both write an access-log line per request)",
    )
    args = parser.parse_args()

    if args._client:  # the load-generator process
        body_path = Path(args._body)
        load = _httpx_load(
            args._client, body_path.read_bytes(), content_type(body_path), args._auth, args.seconds
        )
        result = asyncio.run(load)
        print(json.dumps(result))
        return

    if args.quick:
        args.seconds, args.warmup = 3.0, 1.0
    client_kind = args.client or ("wrk" if shutil.which("wrk") else "httpx")
    conditions = _service.Conditions.collect()
    print(conditions.describe())
    workdir = Path(tempfile.mkdtemp(prefix="backprop-serve-bench-"))
    results: dict[str, dict[int, dict[str, Any]]] = {"predict": {}, "predict npy": {}, "bare": {}}
    try:
        extra = {"BACKPROP_LOG_LEVEL": args.log_level}
        with _service.running_service(workers=1, extra_env=extra) as service:
            model_id = train_model(service)
            rng = np.random.default_rng(1)
            bodies: dict[tuple[str, int], Path] = {}
            constants: dict[int, str] = {}
            with service.client() as client:
                for rows in ROW_COUNTS:
                    x = np.round(rng.standard_normal((rows, SIZES[0])), 4)
                    body = json.dumps({"x": x.tolist()})
                    bodies[("json", rows)] = workdir / f"body-{rows}.json"
                    bodies[("json", rows)].write_text(body)
                    # The same rows as float32 in a .npy body (what JSON rows become anyway).
                    bodies[("npy", rows)] = workdir / f"body-{rows}.npy"
                    np.save(bodies[("npy", rows)], x.astype(np.float32))
                    url = f"/v1/models/{model_id}/predict"
                    response = client.post(
                        url, content=body, headers={"Content-Type": "application/json"}
                    )
                    answer = _service.check(response, 200)
                    assert len(answer["outputs"]) == rows, answer
                    constants[rows] = response.text
                    npy_body = bodies[("npy", rows)].read_bytes()
                    npy_answer = client.post(
                        url, content=npy_body, headers={"Content-Type": "application/x-npy"}
                    )
                    assert _service.check(npy_answer, 200) == answer, "npy and JSON disagree"
            constants_path = workdir / "constants.json"
            constants_path.write_text(json.dumps(constants))
            port = _service.free_port()
            with (workdir / "bare.log").open("wb") as log:
                bare = start_bare(constants_path, port, args.log_level, log)
            try:
                _service.wait_for_http(f"http://127.0.0.1:{port}/healthz", 30.0, bare)
                print(
                    f"client: {client_kind}, {CONNECTIONS} keep-alive connections, "
                    f"{args.seconds:g} s per case after {args.warmup:g} s warm-up; "
                    f"both servers: uvicorn defaults, 1 process, --log-level {args.log_level}; "
                    "the service also runs its 1 (idle) worker process"
                )
                auth = f"Bearer {service.key}"
                predict_url = f"{service.base_url}/v1/models/{model_id}/predict"
                targets = {
                    "predict": (predict_url, auth, "json"),
                    "predict npy": (predict_url, auth, "npy"),
                    "bare": (f"http://127.0.0.1:{port}/bare/{{rows}}", "", "json"),
                }
                for rows in ROW_COUNTS:
                    for name in ("bare", "predict", "predict npy"):
                        url, key, kind = targets[name]
                        url, body_path = url.format(rows=rows), bodies[(kind, rows)]
                        for seconds in (args.warmup, args.seconds):  # warm-up, then measured
                            result = measure(client_kind, url, body_path, key, seconds, workdir)
                        result["load_average"] = _service.load_average()
                        results[name][rows] = result
                        print(
                            f"  {name} {rows} row(s): {result['requests_per_s']:,.0f} req/s, "
                            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
                            f"errors {result['errors']} (load {result['load_average']})",
                            flush=True,
                        )
            finally:
                _service.stop_process(bare)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    table = []
    for rows in ROW_COUNTS:
        ours, bare_r = results["predict"][rows], results["bare"][rows]
        npy_r = results["predict npy"][rows]
        rps_ratio = ours["requests_per_s"] / bare_r["requests_per_s"]
        p99_ratio = ours["p99_ms"] / bare_r["p99_ms"]
        target = f"≥ {TARGET_RPS_RATIO}x req/s, ≤ {TARGET_P99_RATIO:g}x p99" if rows == 1 else "-"
        table.append(
            [
                str(rows),
                f"{ours['requests_per_s']:,.0f}",
                f"{ours['p50_ms']:.2f} / {ours['p99_ms']:.2f}",
                f"{bare_r['requests_per_s']:,.0f}",
                f"{bare_r['p50_ms']:.2f} / {bare_r['p99_ms']:.2f}",
                f"{rps_ratio:.2f}",
                f"{p99_ratio:.2f}",
                target,
                f"{ours['errors']} / {bare_r['errors']}",
                f"{npy_r['requests_per_s']:,.0f}",
                f"{npy_r['p50_ms']:.2f} / {npy_r['p99_ms']:.2f}",
                f"{npy_r['requests_per_s'] / bare_r['requests_per_s']:.2f}",
                ours["load_average"],
            ]
        )
    print()
    _service.print_table(
        [
            "rows/request",
            "predict req/s",
            "predict p50 / p99 ms",
            "bare req/s",
            "bare p50 / p99 ms",
            "req/s ratio",
            "p99 ratio",
            "target",
            "errors (ours / bare)",
            "predict .npy req/s",
            "predict .npy p50 / p99 ms",
            ".npy req/s ratio",
            "load avg",
        ],
        table,
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"conditions": conditions.__dict__, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
