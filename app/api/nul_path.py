"""A 404 for any path holding a NUL (``%00``), before routing: no resource's id or route
holds one, and PostgreSQL's text refuses one in a query (a 500 there, where SQLite would
answer 404 after a lookup)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

BODY = json.dumps(
    {"detail": [{"loc": ["path"], "msg": "no path holds a NUL character", "type": "not_found"}]}
).encode()


class NulPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "\x00" in scope["path"]:
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(BODY)),
            ]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": BODY})
            return
        await self.app(scope, receive, send)
