"""A 422 for an API request that gives a query parameter more than once, before
routing: every parameter of this API takes one value, and FastAPI would keep the last
one silently (``?status=queued&status=running`` read as a filter on ``running`` alone)."""

from __future__ import annotations

import json
from collections import Counter
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/v1/"


def repeated(query_string: bytes) -> tuple[str, int] | None:
    """The first parameter given more than once, and how many times; None if none is."""
    names = [name for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)]
    counts = Counter(names)
    return next(((name, counts[name]) for name in names if counts[name] > 1), None)


class QueryOnceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        query: bytes = scope.get("query_string", b"") if scope["type"] == "http" else b""
        # No "&": at most one parameter, nothing to parse (every predict call, say).
        if b"&" in query and scope["path"].startswith(API_PREFIX):
            found = repeated(query)
        if found is None:
            await self.app(scope, receive, send)
            return
        name, times = found
        error = {
            "loc": ["query", name],
            "msg": f"given {times} times: give it once",
            "type": "duplicate_parameter",
        }
        body = json.dumps({"detail": [error]}, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": body})
