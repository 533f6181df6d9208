"""A synchronous HTTP client for the ASGI app: httpx over ASGITransport, lifespan included.

(Starlette's ApiClient warns when used with httpx, and the suite turns warnings into
errors.) An anyio blocking portal runs the app's event loop in a thread; every request is
a real HTTP exchange through the whole middleware stack. Responses are read to the end
before they are returned, so an event stream is seen once it closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from types import GeneratorType, TracebackType
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI


async def _chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class ApiClient:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.headers = httpx.Headers()
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._client: httpx.AsyncClient | None = None

    def __enter__(self) -> ApiClient:
        portal = self._portal = self._stack.enter_context(start_blocking_portal())
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )
        lifespan = self.app.router.lifespan_context(self.app)
        self._stack.enter_context(portal.wrap_async_context_manager(lifespan))
        self._stack.callback(portal.call, self._client.aclose)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self._portal is not None and self._client is not None, "use `with ApiClient(app)`"
        headers = httpx.Headers(self.headers)
        headers.update(kwargs.pop("headers", None) or {})
        if isinstance(kwargs.get("content"), GeneratorType):
            kwargs["content"] = _chunks(kwargs["content"])
        call = partial(self._client.request, method, url, headers=headers, **kwargs)
        return self._portal.call(call)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        yield self.request(method, url, **kwargs)
