"""Security headers on every response.

- The dashboard (``/`` and ``/ui/...``) gets a strict Content-Security-Policy: its
  scripts, styles, images and fetches come from this origin only (it has no inline
  script or style: every script is a module file, every style in styles.css, and the few
  computed styles are set through the CSSOM, which the policy allows), and no other site
  may frame it. Pages that set their own policy (``/docs``, ``/redoc``) keep theirs.
- Every response: ``X-Content-Type-Options: nosniff`` (a JSON or CSV body is never run as
  a script) and ``Referrer-Policy: no-referrer``.
- ``/v1`` responses (the authenticated API) default to ``Cache-Control: no-store``: they
  carry an owner's data and must not sit in a shared or browser cache.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DASHBOARD_POLICY = "default-src 'self'; frame-ancestors 'none'"
API_PREFIX = "/v1/"


def _is_dashboard(path: str) -> bool:
    return path == "/" or path.startswith("/ui/")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if _is_dashboard(path):
                    headers.setdefault("Content-Security-Policy", DASHBOARD_POLICY)
                elif path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
