"""Swagger UI and ReDoc in headless Chromium with no network but this machine.

``/docs`` and ``/redoc`` must render from the server's own files: every request to any
other host is aborted (and recorded), as on a machine without internet. Swagger UI lists
every operation of the OpenAPI document, and Authorize + Try it out + Execute runs an
authenticated call.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.ui.conftest import UI_TIMEOUT_MS, OfflineContext, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def operations(server: Server) -> list[tuple[str, str]]:
    """(tag, operationId) of every operation the server documents."""
    document: dict[str, Any] = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    return [
        (spec["tags"][0], spec["operationId"])
        for item in document["paths"].values()
        for method, spec in item.items()
        if method in HTTP_METHODS
    ]


def open_page(context: OfflineContext, problems: list[str]) -> Page:
    page = context.context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)

    def on_console(message: ConsoleMessage) -> None:
        # The Content-Security-Policy refusing an outside URL is the policy at work
        # (ReDoc's sidebar logo): it never became a request. Any other error counts.
        if message.type == "error" and "Content Security Policy" not in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    return page


def test_swagger_ui_renders_every_operation_and_runs_an_authorized_call(
    offline_context: OfflineContext, api_server: Server
) -> None:
    problems: list[str] = []
    page = open_page(offline_context, problems)
    page.goto(f"{api_server.base_url}/docs")

    expected = operations(api_server)
    assert len(expected) > 20
    expect(page.locator(".opblock")).to_have_count(len(expected), timeout=UI_TIMEOUT_MS)
    for tag, operation_id in expected:
        expect(page.locator(f"#operations-{tag}-{operation_id}")).to_have_count(1)

    # The key pasted in Authorize goes with Try it out: the listing answers 200.
    page.locator("button.authorize").click()
    page.locator("#auth-bearer-value").fill(api_server.key)
    page.get_by_role("button", name="Apply credentials").click()
    page.get_by_role("button", name="Close").click()

    operation = page.locator("#operations-datasets-list_datasets")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    expect(status).to_have_text("200", timeout=UI_TIMEOUT_MS)
    body = operation.locator(".live-responses-table .response-col_description pre").first
    expect(body).to_contain_text('"items"')
    assert json.loads(body.inner_text())["items"] == []

    assert offline_context.blocked == [], "the page asked another host"
    assert problems == [], f"console errors: {problems}"


def test_redoc_renders_every_operation(offline_context: OfflineContext, api_server: Server) -> None:
    problems: list[str] = []
    page = open_page(offline_context, problems)
    page.goto(f"{api_server.base_url}/redoc")

    title = page.get_by_role("heading", name=re.compile(r"^Backprop"), level=1)
    expect(title).to_be_visible(timeout=UI_TIMEOUT_MS)
    for tag, operation_id in operations(api_server):
        section = page.locator(f"[data-section-id='tag/{tag}/operation/{operation_id}']")
        expect(section.first).to_be_attached()

    assert offline_context.blocked == [], "the page asked another host"
    assert problems == [], f"console errors: {problems}"
