"""HTTP to a running Backprop server: one httpx client; refusals become exceptions.

Every failure the command line reports is a :class:`ClientError` with the exit status
it ends with: the server's refusals (4xx: its ``msg`` and ``loc`` per item) exit 1, an
unreachable server or a server error (5xx) exits 3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO

import httpx

DEFAULT_URL = "http://localhost:8000"
TIMEOUT_SECONDS = 60.0
# An event stream is quiet between epochs; the server sends a keep-alive every 15 s.
STREAM_READ_TIMEOUT_SECONDS = 60.0

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3


class ClientError(Exception):
    """A failure to print as ``error: ...``; the command exits with ``exit_code``."""

    exit_code = EXIT_REFUSED


class Unreachable(ClientError):
    """No HTTP answer: connection refused, unknown host, timeout."""

    exit_code = EXIT_UNREACHABLE


class ApiError(ClientError):
    """An HTTP error answer; ``detail`` holds the server's ``{"loc", "msg", "type"}`` items."""

    def __init__(self, status_code: int, detail: list[dict[str, Any]], *, hint: str = "") -> None:
        self.status_code = status_code
        self.detail = detail
        self.exit_code = EXIT_REFUSED if status_code < 500 else EXIT_UNREACHABLE
        lines = [_item_text(item) for item in detail] or ["(no message)"]
        verb = "refused" if status_code < 500 else "failed"
        lines += [hint] if hint else []
        super().__init__(f"the server {verb} (HTTP {status_code}): " + "\n  ".join(lines))


def _item_text(item: Mapping[str, Any]) -> str:
    msg = str(item.get("msg", item))
    loc = item.get("loc")
    if isinstance(loc, list) and loc:
        return f"{msg} (at {'.'.join(str(part) for part in loc)})"
    return msg


def _error_detail(response: httpx.Response) -> list[dict[str, Any]]:
    """The ``detail`` list of an error body; anything else as one item (e.g. a proxy's page)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        return [item if isinstance(item, dict) else {"msg": str(item)} for item in body["detail"]]
    text = response.text.strip()[:300] or response.reason_phrase
    return [{"loc": [], "msg": text}]


class Api:
    """The server at ``url``, called with ``Authorization: Bearer <key>`` when a key is given.

    Methods return the decoded JSON body (``None`` for 204) or raise :class:`ClientError`.
    """

    def __init__(
        self, url: str, key: str | None, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.has_key = bool(key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=TIMEOUT_SECONDS, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self._json(self._send("GET", path, params=clean))

    def post(self, path: str, body: Any = None) -> Any:
        return self._json(self._send("POST", path, json=body))

    def post_form(
        self, path: str, *, files: Mapping[str, tuple[str, bytes, str]], data: Mapping[str, str]
    ) -> Any:
        return self._json(self._send("POST", path, files=files, data=data))

    def post_bytes(self, path: str, content: bytes, *, content_type: str) -> Any:
        headers = {"Content-Type": content_type}
        return self._json(self._send("POST", path, content=content, headers=headers))

    def download(self, path: str, target: BinaryIO, params: Mapping[str, Any]) -> int:
        """GET ``path`` streamed into ``target``; the bytes written."""
        written = 0
        with (
            self._transport_errors(),
            self._http.stream("GET", path, params=dict(params)) as response,
        ):
            if response.is_error:
                response.read()
                raise self._refusal(response)
            for chunk in response.iter_bytes():
                target.write(chunk)
                written += len(chunk)
        return written

    @contextmanager
    def stream(self, path: str, *, headers: Mapping[str, str]) -> Iterator[httpx.Response]:
        """A streamed GET (an event stream): the response, once its status is a success."""
        timeout = httpx.Timeout(TIMEOUT_SECONDS, read=STREAM_READ_TIMEOUT_SECONDS)
        with (
            self._transport_errors(),
            self._http.stream("GET", path, headers=dict(headers), timeout=timeout) as response,
        ):
            if response.is_error:
                response.read()
                raise self._refusal(response)
            yield response

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._transport_errors():
            response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise self._refusal(response)
        return response

    def _json(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ClientError(
                f"{response.request.url} answered with something other than JSON; "
                f"is {self.url} a Backprop server?"
            ) from None

    def _refusal(self, response: httpx.Response) -> ApiError:
        hint = ""
        if response.status_code == 401 and not self.has_key:
            hint = "pass --key KEY or set BACKPROP_KEY (`backprop serve` printed one at start)"
        return ApiError(response.status_code, _error_detail(response), hint=hint)

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.ConnectError as exc:
            raise Unreachable(
                f"cannot reach the Backprop server at {self.url} ({_reason(exc)}); is "
                "`backprop serve` running there? Pass --url or set BACKPROP_URL for another"
            ) from None
        except httpx.TimeoutException:
            raise Unreachable(f"the Backprop server at {self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise Unreachable(
                f"the connection to the Backprop server at {self.url} failed: {_reason(exc)}"
            ) from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text.rsplit("] ", 1)[-1] if text else type(exc).__name__
