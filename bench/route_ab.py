"""A/B of predict's route class: ``DirectRoute`` against ordinary FastAPI routes.

One API process (the service's app, uvicorn started as ``backprop serve`` starts it, one
BLAS thread) serves predict three ways at once, so all three share the process, the
caches, the model and the machine's state:

- ``direct``: the app's own route (``/v1/models/{id}/predict``, a ``DirectRoute``);
- ``plain``: the same endpoint under an ordinary ``APIRoute`` (FastAPI solves the path
  parameter and the request);
- ``idiomatic``: an ordinary ``APIRoute`` whose endpoint takes the caller through the
  ``CallerDep`` dependency (``Security(HTTPBearer)``), as every other /v1 route does.

Both ordinary routes sit right after the app's predict route, ahead of every /v1
route. wrk sends 1-row JSON predicts (16 connections, one thread) to each variant in
turn, round after round, the order reversed every other round; each round gives one
ratio per variant against ``direct``. The machine is shared: read the median ratio.

Then the same three routes are called in-process (the ASGI app called directly, one
request at a time, 1 BLAS thread), interleaved the same way: server time per request.

    .venv/bin/python bench/route_ab.py [--rounds 8] [--seconds 4] [--warmup 1] [--requests 1000]
"""

from __future__ import annotations

import _service  # first: drops the BLAS overrides before numpy loads

_service.clean_blas_env()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402
from fastapi.routing import APIRoute  # noqa: E402
from serve import SIZES, run_wrk, train_model  # noqa: E402
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: E402

from app.api import predict as predict_api  # noqa: E402
from app.api.deps import CallerDep  # noqa: E402
from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402

VARIANTS = ("direct", "plain", "idiomatic")
PATHS = {
    "direct": "/v1/models/{model_id}/predict",
    "plain": "/ab/plain/{model_id}/predict",
    "idiomatic": "/ab/idiomatic/{model_id}/predict",
}


async def idiomatic(model_id: str, request: Request, caller: CallerDep) -> Response:
    """Predict as an ordinary route: the caller comes from the ``CallerDep`` dependency."""
    return await predict_api.respond(request, owner_id=caller.owner_id, model_id=model_id)


def ab_app(settings: Settings | None = None) -> FastAPI:
    """uvicorn factory (``route_ab:ab_app``): the service's app plus the two ordinary routes."""
    app = create_app(settings)
    routes = [
        APIRoute(PATHS["plain"], predict_api.predict, methods=["POST"]),
        APIRoute(PATHS["idiomatic"], idiomatic, methods=["POST"]),
    ]
    # FastAPI keeps each included router as one entry (its routes matched in its place).
    routers = [getattr(route, "original_router", None) for route in app.router.routes]
    after_predict = routers.index(predict_api.router) + 1
    app.router.routes[after_predict:after_predict] = routes
    return app


def start_ab_server(service: _service.Service, port: int, log: Any) -> Any:
    env = {
        **service.env,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "route_ab:ab_app", "--factory",
        "--app-dir", str(Path(__file__).resolve().parent),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "info",
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, env=env, cwd=str(service.workdir), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def ab_over_wrk(
    base: str, model_id: str, body_path: Path, auth: str, args: argparse.Namespace
) -> dict[str, list[float]]:
    """req/s of each variant per round under wrk; the order is reversed every other round."""
    print(
        f"wrk, 16 connections, 1-row JSON predict, {args.rounds} rounds of "
        f"{args.seconds:g} s per variant after {args.warmup:g} s warm-up",
        flush=True,
    )
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_index in range(args.rounds):
        order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
        for name in order:
            url = base + PATHS[name].format(model_id=model_id)
            for seconds in (args.warmup, args.seconds):
                result = run_wrk(url, body_path, auth, seconds, body_path.parent)
            assert result["errors"] == 0, f"{name}: {result['errors']} errors"
            rates[name].append(result["requests_per_s"])
        line = ", ".join(f"{name} {rates[name][-1]:,.0f}" for name in VARIANTS)
        print(f"  round {round_index + 1}: req/s {line} (load {_service.load_average()})")
    return rates


async def ab_in_process(
    env: dict[str, str], model_id: str, body: bytes, auth: str, args: argparse.Namespace
) -> dict[str, list[float]]:
    """Server time per request (µs) of each variant: the ASGI app called directly, one
    request at a time, ``args.requests`` per variant per round, the order reversed every
    other round. No sockets, no uvicorn: what the route class itself costs."""
    settings = Settings(database_url=env["BACKPROP_DATABASE_URL"], key_cache_seconds=60)
    app = ab_app(settings)
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", auth.encode()),
        (b"content-length", str(len(body)).encode()),
    ]

    async def call(path: str) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        assert statuses == [200], (path, statuses)

    timings: dict[str, list[float]] = {name: [] for name in VARIANTS}
    async with app.router.lifespan_context(app):
        for path in PATHS.values():  # warm the key and model caches, and the routes
            for _ in range(50):
                await call(path.format(model_id=model_id))
        for round_index in range(args.rounds):
            order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
            for name in order:
                path = PATHS[name].format(model_id=model_id)
                started = time.perf_counter()
                for _ in range(args.requests):
                    await call(path)
                seconds = time.perf_counter() - started
                timings[name].append(seconds / args.requests * 1e6)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=1000, help="in-process, per round")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    print(_service.Conditions.collect().describe(), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="backprop-route-ab-"))
    try:
        extra = {"BACKPROP_LOG_LEVEL": "info", "BACKPROP_KEY_CACHE_SECONDS": "60"}
        with _service.running_service(workers=1, extra_env=extra) as service:
            model_id = train_model(service)
            x = np.round(np.random.default_rng(1).standard_normal((1, SIZES[0])), 4)
            body_path = workdir / "body-1.json"
            body_path.write_text(json.dumps({"x": x.tolist()}))
            port = _service.free_port()
            with (workdir / "ab.log").open("wb") as log:
                server = start_ab_server(service, port, log)
            try:
                base = f"http://127.0.0.1:{port}"
                _service.wait_for_http(base + "/healthz", 30.0, server)
                check_same_answers(service, base, model_id, body_path.read_bytes())
                auth = f"Bearer {service.key}"
                rates = ab_over_wrk(base, model_id, body_path, auth, args)
            finally:
                _service.stop_process(server)
            with threadpool_limits(1):  # the API process's one BLAS thread
                body = body_path.read_bytes()
                measured = ab_in_process(service.env, model_id, body, auth, args)
                timings = asyncio.run(measured)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(rates, timings)


def check_same_answers(service: _service.Service, base: str, model_id: str, body: bytes) -> None:
    answers = set()
    with service.client() as client:
        for name in VARIANTS:
            response = client.post(base + PATHS[name].format(model_id=model_id), content=body)
            answers.add(json.dumps(_service.check(response, 200), sort_keys=True))
    assert len(answers) == 1, "the variants answer differently"


def report(rates: dict[str, list[float]], timings: dict[str, list[float]]) -> None:
    print()
    print(
        "| variant | wrk req/s, median | ratio to direct per round: median (min-max) "
        "| in-process µs / request, median | minus direct, median |"
    )
    print("|---|---|---|---|---|")
    for name in VARIANTS:
        ratios = [a / b for a, b in zip(rates[name], rates["direct"], strict=True)]
        extra = [a - b for a, b in zip(timings[name], timings["direct"], strict=True)]
        print(
            f"| {name} | {statistics.median(rates[name]):,.0f} | "
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) | "
            f"{statistics.median(timings[name]):.0f} | {statistics.median(extra):+.0f} |"
        )


if __name__ == "__main__":
    main()
