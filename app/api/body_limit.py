"""Request body size limit, counted as the body streams in.

A declared ``Content-Length`` over the limit is refused before anything is read; without
one (chunked), or with one that lies, the bytes are counted as they arrive and the
request is refused as soon as the count passes the limit. The refusal is raised from
``receive`` as an HTTPException, which FastAPI re-raises from body parsing unchanged and
our handler answers as JSON 413; if it escapes the app instead, this middleware answers.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SETTING = "BACKPROP_MAX_BODY_BYTES"
UPLOAD_SETTING = "BACKPROP_MAX_UPLOAD_BYTES"


class BodyTooLarge(HTTPException):
    def __init__(self, size: int, limit: int, declared: bool, setting: str = SETTING) -> None:
        what = f"declared Content-Length {size}" if declared else "request body"
        self.errors: list[dict[str, Any]] = [
            {
                "loc": ["body"],
                "msg": f"{what} is over the limit {setting}={limit} bytes",
                "type": "limit_exceeded",
            }
        ]
        super().__init__(status_code=413, detail=self.errors[0]["msg"])


class BodySizeLimitMiddleware:
    """``max_body_bytes`` for every request but those to ``upload_paths``, which stream to
    disk and get ``max_upload_bytes``."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") in self.upload_paths:
            limit, setting = self.max_upload_bytes, UPLOAD_SETTING
        else:
            limit, setting = self.max_body_bytes, SETTING
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(BodyTooLarge(declared, limit, declared=True, setting=setting), send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(received, limit, declared=False, setting=setting)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(exc, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(exc: BodyTooLarge, send: Send) -> None:
    body = json.dumps({"detail": exc.errors}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
