"""Body read timeout: a request whose body stops arriving for
``BACKPROP_BODY_TIMEOUT_SECONDS`` is answered 408 (JSON naming the setting).

The timeout applies to each wait for the next body chunk, until the body is complete;
after that ``receive`` is passed through untouched (a streaming response waits on it for
the client's disconnect). Like the body size limit, the refusal is an HTTPException
raised from ``receive``, which FastAPI re-raises from body parsing and app.main answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SETTING = "BACKPROP_BODY_TIMEOUT_SECONDS"


class BodyReadTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        msg = f"no request body bytes arrived for {seconds:g} s, the limit {SETTING}={seconds:g}"
        self.errors: list[dict[str, Any]] = [{"loc": ["body"], "msg": msg, "type": "timeout"}]
        super().__init__(status_code=408, detail=msg, headers={"Connection": "close"})


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                raise BodyReadTimeout(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed_receive, send)
