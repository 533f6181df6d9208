"""The API's HTTP server: uvicorn (httptools) with limits on slow and oversized requests.

uvicorn bounds neither how long a client may take to send its request line and headers
(its keep-alive timer restarts on every byte, so a client sending one byte at a time
stays connected for ever) nor, with httptools, how many header bytes it buffers. The
protocol below adds both:

- ``BACKPROP_MAX_HEADER_BYTES``: a request whose line and headers are not complete within
  that many bytes is answered 431 (JSON naming the setting) and the connection closed;
- ``BACKPROP_HEADER_TIMEOUT_SECONDS``: a connection whose request line and headers are not
  complete that long after it opened, or after its last response, is closed;
- ``BACKPROP_KEEP_ALIVE_SECONDS``: uvicorn's ``timeout_keep_alive`` (idle connections).

The body read timeout is :mod:`app.api.body_timeout` (ASGI middleware, a 408).
``backprop serve`` runs this module as its API process (``python -m app.api.http_server``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import get_settings

log = logging.getLogger("backprop.http")
HEADER_SETTING = "BACKPROP_MAX_HEADER_BYTES"


class HeadersTooLarge(ValueError):
    pass


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit and a header read timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout = settings.header_timeout_seconds
        self._awaiting_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._parsed_header_bytes = 0
        self._headers_refused = False
        # Between a request's headers and the end of its body: bytes that arrive then are
        # body, never counted as the next request's headers, even once the response went
        # out before the body was read (a refusal): uvicorn discards the rest of it.
        self._in_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A chunk that ends a body and starts the next headers is not counted: those
        # header bytes are counted as they are parsed, and the timer bounds the rest.
        counting = self._awaiting_headers and not self._in_body
        super().data_received(data)
        if counting and self._awaiting_headers:
            # Counted after parsing: a chunk holding complete headers and a big body is fine.
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count_header_bytes(self, size: int) -> None:
        """Headers that arrive whole in one chunk are counted here, as they are parsed."""
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > self.max_header_bytes:
            self._headers_refused = True
            # httptools turns it into HttpParserCallbackError: uvicorn's 400, sent as 431.
            raise HeadersTooLarge(self._parsed_header_bytes)

    def send_400_response(self, msg: str) -> None:
        if self._headers_refused:
            self._refuse_headers()
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._in_body = True
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        idle = not self.pipeline  # no request parsed ahead: the next one is still to come
        super().on_response_complete()
        if idle and not self.transport.is_closing():
            self._await_headers()

    def _await_headers(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            log.info("closing a connection whose headers took over %g s", self.header_timeout)
            self.transport.close()

    def _refuse_headers(self) -> None:
        if self.transport.is_closing():
            return
        self._awaiting_headers = False
        self._cancel_header_timer()
        msg = f"the request headers are over the limit {HEADER_SETTING}={self.max_header_bytes}"
        body = json.dumps({"detail": [{"loc": ["header"], "msg": msg, "type": "limit_exceeded"}]})
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body.encode()
        )
        self.transport.close()


def main(argv: list[str] | None = None) -> None:
    """Serve ``app.main:served_app`` on ``--host``/``--port`` with the limits above."""
    parser = argparse.ArgumentParser(prog="python -m app.api.http_server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    settings = get_settings()
    uvicorn.run(
        "app.main:served_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        http=GuardedHttpProtocol,
        timeout_keep_alive=settings.keep_alive_seconds,
    )


if __name__ == "__main__":
    main()
