"""The predict hot path: concurrent cache misses share one read; big JSON bodies are
refused like small ones; predict is matched first and its route stays lean."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import event

from app.api.singleflight import SingleFlight
from app.config import Settings
from app.main import create_app
from app.services import predict as predicting
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import Keys, auth, import_model, make_network

WAIT_SECONDS = 30.0  # a guard against hanging, never a timing assertion
LOOP_TURNS = 100_000  # asyncio.sleep(0) turns allowed for requests to reach a point


async def _turn_until(condition: Callable[[], bool]) -> None:
    for _ in range(LOOP_TURNS):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the requests did not get there")


def test_single_flight_shares_one_call() -> None:
    release = threading.Event()
    calls: list[int] = []

    def read() -> int:
        calls.append(1)
        assert release.wait(WAIT_SECONDS)
        return 42

    async def scenario() -> list[int]:
        flight: SingleFlight[str, int] = SingleFlight()
        tasks = [asyncio.create_task(flight.run("k", read)) for _ in range(8)]
        await _turn_until(lambda: len(calls) == 1)
        for _ in range(3):  # every task has started and joined the one call
            await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*tasks)
        assert flight.in_flight() == 0
        assert await flight.run("k", lambda: 7) == 7  # the next miss calls again
        return results

    assert asyncio.run(scenario()) == [42] * 8
    assert calls == [1]


def test_single_flight_shares_the_error_and_survives_a_cancelled_caller() -> None:
    release = threading.Event()

    def read() -> int:
        assert release.wait(WAIT_SECONDS)
        raise LookupError("gone")

    async def scenario() -> None:
        flight: SingleFlight[str, int] = SingleFlight()
        leader = asyncio.create_task(flight.run("k", read))
        others = [asyncio.create_task(flight.run("k", read)) for _ in range(3)]
        await asyncio.sleep(0)
        leader.cancel()  # its client went away: the read goes on for the others
        await asyncio.sleep(0)
        release.set()
        for task in others:
            with pytest.raises(LookupError, match="gone"):
                await task
        with pytest.raises(asyncio.CancelledError):
            await leader

    asyncio.run(scenario())


def test_concurrent_cold_predicts_read_the_database_once(
    client: ApiClient, keys: Keys, db: Database
) -> None:
    model = import_model(client, make_network(client))
    url = f"/v1/models/{model['id']}/predict"
    app = create_app(
        Settings(database_url=db.url, key_cache_seconds=60, model_recheck_seconds=60), db
    )  # cold caches
    ctx = app.state.backprop
    arrivals: list[str] = []
    original_run = ctx.key_lookups.run

    async def counted_run(key: str, call: Callable[[], Any]) -> Any:
        arrivals.append(key)
        return await original_run(key, call)

    ctx.key_lookups.run = counted_run
    release = threading.Event()
    checkouts: list[object] = []

    def on_checkout(*_args: object) -> None:
        checkouts.append(1)
        assert release.wait(WAIT_SECONDS)  # hold the first read until every request missed

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
        ):
            tasks = [
                asyncio.create_task(http.post(url, json={"x": [[0, 1]]}, headers=auth(keys.alice)))
                for _ in range(8)
            ]
            await _turn_until(lambda: len(arrivals) == 8)
            release.set()
            return await asyncio.gather(*tasks)

    event.listen(db.engine, "checkout", on_checkout)
    try:
        responses = asyncio.run(scenario())
    finally:
        event.remove(db.engine, "checkout", on_checkout)
    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.text for r in responses}) == 1
    # One key read, one last_used_at write, one model read: not one of each per request.
    assert len(checkouts) == 3


@pytest.mark.parametrize(
    "body",
    [
        b'{"x": [[' + b"7" * 4301 + b"]]}",  # the standard library refuses > 4300 digits
        b'{"x": [' + b"[" * 200_000 + b"]" * 200_001 + b"}",  # deeper than the stack
    ],
)
def test_bodies_the_parser_cannot_take_are_a_422_not_a_500(body: bytes) -> None:
    with pytest.raises(predicting.Invalid) as refused:
        predicting.parse_rows(body, width=1, max_rows=10)
    assert refused.value.loc == ("body",)
    assert refused.value.type == "json_invalid"


def test_large_bodies_are_refused_like_small_ones(client: ApiClient) -> None:
    width = 300
    model = import_model(client, make_network(client, input_size=width))
    url = f"/v1/models/{model['id']}/predict"
    x: list[list[Any]] = np.zeros((60, width)).tolist()
    x[30][5] = None
    body = json.dumps({"x": x}).encode()
    broken = body[:-3] + b"}"
    response = client.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "x", 30, 5]
    response = client.post(url, content=broken, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_predict_is_matched_before_the_other_routes(client: ApiClient) -> None:
    paths = list(client.app.openapi()["paths"])
    assert paths[0] == "/v1/models/{model_id}/predict"


def test_direct_route_refuses_endpoints_its_lean_handler_cannot_serve() -> None:
    from fastapi import APIRouter, Depends, Request, Response

    from app.api.predict import DirectRoute

    router = APIRouter(route_class=DirectRoute)

    async def fine(item_id: str, request: Request) -> Response:
        return Response()

    router.add_api_route("/ok/{item_id}", fine, methods=["POST"])

    def blocking(item_id: str, request: Request) -> Response:
        return Response()

    async def with_query(item_id: str, request: Request, limit: int = 1) -> Response:
        return Response()

    async def with_dependency(
        item_id: str, request: Request, user: str = Depends(lambda: "u")
    ) -> Response:
        return Response()

    for endpoint in (blocking, with_query, with_dependency):
        with pytest.raises(TypeError, match="DirectRoute"):
            router.add_api_route("/bad/{item_id}", endpoint, methods=["POST"])
