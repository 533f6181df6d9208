"""Fixtures of the browser tests: Debian's headless Chromium and a real ``backprop serve``.

- ``browser``: Chromium driven by Playwright; the test skips (with the reason) when no
  Chromium is installed. The browser is never downloaded.
- ``server``: ``backprop serve`` with one worker; ``api_server``: with none (pages that
  train nothing). Each on a free port with a fresh SQLite database and its own key.
- ``offline_context``: a browser context that reaches only this machine: every request
  to any other host is aborted and recorded in ``context.blocked``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from tests.processes import serve_on_sqlite

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SERVER_START_TIMEOUT = 60.0
UI_TIMEOUT_MS = 30_000  # each page action and expectation (generous: no timing is tested)
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def chromium_path() -> str | None:
    """Debian's chromium (or BACKPROP_TEST_CHROMIUM), never a downloaded browser."""
    candidates = [os.environ.get("BACKPROP_TEST_CHROMIUM", ""), *CHROMIUM_PATHS]
    candidates.append(shutil.which("chromium") or "")
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def watched_page(context: BrowserContext, problems: list[str]) -> Page:
    """A new page of ``context`` waiting up to UI_TIMEOUT_MS; each console error and
    uncaught exception of its scripts is appended to ``problems``."""
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    return page


@dataclass(frozen=True)
class Server:
    base_url: str
    key: str
    log: Path


@contextmanager
def running_server(tmp_path: Path, *, workers: int) -> Iterator[Server]:
    """``backprop serve`` with ``workers`` workers on a free port and a fresh SQLite file."""
    # The default lease: cancels are polled for.
    with serve_on_sqlite(
        tmp_path, workers=workers, timeout=SERVER_START_TIMEOUT, unset=["BACKPROP_LEASE_SECONDS"]
    ) as served:
        yield Server(served.url, served.key, served.log)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``backprop serve`` with one worker."""
    with running_server(tmp_path, workers=1) as started:
        yield started


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[Server]:
    """``backprop serve`` without workers: the API alone."""
    with running_server(tmp_path, workers=0) as started:
        yield started


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright; the test skips when there is none."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set BACKPROP_TEST_CHROMIUM)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


class OfflineContext:
    """A browser context whose requests to any host but this machine are aborted."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.blocked: list[str] = []
        context.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in {"http", "https", "ws", "wss"} and url.hostname not in LOCAL_HOSTS:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()


@pytest.fixture
def offline_context(browser: Browser) -> Iterator[OfflineContext]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        yield OfflineContext(context)
    finally:
        context.close()
