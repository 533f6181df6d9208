"""HEAD on every resource: answered as GET would be, headers only (RFC 9110 §9.3.2).

FastAPI routes a HEAD only to a route declared for it, so a HEAD of anything else was a
405. This middleware, the innermost, hands the app a GET, forwards its status and headers
(``content-length`` included, as the GET's) and ends the response there, stopping the
app: a download is not read from the blob store, an event stream (which never ends by
itself, and whose first event may be minutes away) answers at once and frees its slot.
What a GET answers 404, 405 or 401, a HEAD answers the same, without the JSON body.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadRequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False
        # A cancel scope, not a task group: an exception from the app reaches the outer
        # middleware as itself, not wrapped in an ExceptionGroup.
        with anyio.CancelScope() as stop:

            async def headers_only(message: Message) -> None:
                nonlocal ended
                if ended or message["type"] != "http.response.start":
                    return
                ended = True
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                stop.cancel()  # the body is not wanted

            as_get = {**scope, "method": "GET"}
            try:
                await self.app(as_get, receive, headers_only)
            finally:
                if "route" in as_get:  # the metrics' route label (app/api/prometheus.py)
                    scope["route"] = as_get["route"]
