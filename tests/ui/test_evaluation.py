"""The model page's "Evaluate" card in a real headless Chromium against ``backprop serve``:
a model trained by the worker is evaluated on a held-out dataset picked in the page; the
confusion-matrix heat map, the ROC curve and the per-class table appear; a regression
model shows predicted against actual. Skipped (with the reason) without Chromium."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.processes import serve_on_sqlite
from tests.ui.conftest import SERVER_START_TIMEOUT, Server, watched_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAIN_TIMEOUT_S = 180.0  # generous: a shared 2-core machine
MOONS_NET = {
    "name": "moons-net",
    "input_size": 2,
    "layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
}


def _post(api: httpx.Client, path: str, **kwargs: Any) -> dict[str, Any]:
    response = api.post(path, **kwargs)
    assert response.status_code in (201, 202), response.text
    return dict(response.json())


def _trained_model(api: httpx.Client) -> tuple[str, str]:
    """A moons classifier trained by the server's worker, and a held-out moons dataset."""
    train = _post(api, "/v1/datasets/generate", json={"kind": "moons", "n_samples": 200})
    held_out = _post(
        api,
        "/v1/datasets/generate",
        json={"kind": "moons", "n_samples": 120, "seed": 7, "name": "held-out"},
    )
    network = _post(api, "/v1/networks", json=MOONS_NET)
    job = _post(
        api,
        "/v1/jobs",
        json={"network_id": network["id"], "dataset_id": train["id"], "epochs": 60},
    )
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = api.get(f"/v1/jobs/{job['id']}").json()
        if state["status"] not in ("queued", "running"):
            break
        time.sleep(0.3)
    assert state["status"] == "succeeded", state
    return str(state["model_id"]), str(held_out["id"])


def _regression_model(api: httpx.Client) -> tuple[str, str]:
    """A regression network's model (imported, fresh weights) and a dataset for it."""
    network = _post(
        api,
        "/v1/networks",
        json={
            "name": "reg-net",
            "input_size": 2,
            "layers": [
                {"units": 4, "activation": "tanh"},
                {"units": 1, "activation": "linear"},
            ],
            "loss": "mse",
        },
    )
    job = _post(
        api,
        "/v1/jobs",
        json={"network_id": network["id"], "dataset_id": _reg_data(api), "epochs": 5},
    )
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while api.get(f"/v1/jobs/{job['id']}").json()["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    model_id = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]
    return str(model_id), _reg_data(api)


def _reg_data(api: httpx.Client) -> str:
    x = [[i / 10, (i % 7) / 7] for i in range(40)]
    y = [a - 2 * b for a, b in x]
    return str(_post(api, "/v1/datasets", json={"name": "reg", "x": x, "y": y})["id"])


def _sign_in(page: Page, server: Server) -> None:
    page.goto(f"{server.base_url}/")
    page.get_by_label("API key", exact=True).fill(server.key)
    page.get_by_label("API key", exact=True).press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def _open_model(page: Page, server: Server, model_id: str) -> None:
    page.goto(f"{server.base_url}/#/models/{model_id}")
    expect(page.get_by_role("heading", name=f"Model {model_id}")).to_be_visible()


def test_evaluate_a_trained_model(browser: Browser, server: Server, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as api:
        model_id, held_out = _trained_model(api)
        regression_id, _ = _regression_model(api)
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = watched_page(context, problems)
        _sign_in(page, server)
        _open_model(page, server, model_id)

        form = page.get_by_role("form", name="Evaluate")
        form.get_by_label("Dataset", exact=True).select_option(held_out)
        form.get_by_role("button", name="Evaluate").click()
        heatmap = page.locator("svg.heatmap")
        expect(heatmap.locator("rect.heat-cell")).to_have_count(4)
        counts = heatmap.locator("rect.heat-cell").evaluate_all(
            "cells => cells.map(c => Number(c.dataset.count))"
        )
        assert sum(counts) == 120
        assert counts[0] + counts[3] > counts[1] + counts[2]  # trained: mostly the diagonal
        fills = set(
            heatmap.locator("rect.heat-cell").evaluate_all(
                "cs => cs.map(c => c.getAttribute('fill'))"
            )
        )
        assert len(fills) > 1  # shaded by share, not one colour
        roc = page.locator("svg.roc")
        expect(roc).to_have_count(1)
        assert int(roc.get_attribute("data-points") or 0) >= 3
        per_class = page.get_by_role("table", name="Per-class scores")
        expect(per_class.locator("tbody tr")).to_have_count(2 + 2)  # classes + two averages
        expect(
            page.get_by_role("table", name="Evaluations", exact=True).locator("tbody tr")
        ).to_have_count(1)
        card_rows = page.get_by_role("table", name="Evaluations on the card").locator("tbody tr")
        expect(card_rows).to_have_count(1)  # the card is redrawn with the new evaluation
        page.screenshot(path=str(tmp_path / "evaluation.png"), full_page=True)

        # Reloading the page shows the stored evaluation, also on the card.
        page.reload()
        expect(page.locator("svg.heatmap rect.heat-cell")).to_have_count(4)
        expect(
            page.get_by_role("table", name="Evaluations on the card").locator("tbody tr")
        ).to_have_count(1)

        _open_model(page, server, regression_id)
        form = page.get_by_role("form", name="Evaluate")
        form.get_by_role("button", name="Evaluate").click()
        expect(page.locator("svg.scatter circle.point")).to_have_count(40)
        expect(
            page.get_by_role("table", name="Per-target scores").locator("tbody tr")
        ).to_have_count(1)

        # An ended evaluation can be deleted from the list (after a confirmation).
        evaluations = page.get_by_role("table", name="Evaluations", exact=True)
        expect(evaluations.locator("tbody tr")).to_have_count(1)
        page.once("dialog", lambda dialog: dialog.accept())
        evaluations.get_by_role("button", name="Delete evaluation").click()
        expect(evaluations.get_by_text("None yet.")).to_be_visible()
    finally:
        context.close()
    assert problems == [], f"console errors: {problems}"


def test_a_queued_evaluation_is_followed_and_cancelled(browser: Browser, tmp_path: Path) -> None:
    """No worker: a large dataset's evaluation stays queued. The card opens on it, polls
    it, and its Cancel button ends it (the button stays disabled once pressed)."""
    settings = {"BACKPROP_SYNC_EVALUATION_ROWS": "10"}
    with serve_on_sqlite(
        tmp_path, workers=0, timeout=SERVER_START_TIMEOUT, settings=settings
    ) as served:
        headers = {"Authorization": f"Bearer {served.key}"}
        with httpx.Client(base_url=served.url, headers=headers, timeout=60) as api:
            layers = [{"units": 1, "activation": "sigmoid"}]
            network = _post(api, "/v1/networks", json={**MOONS_NET, "layers": layers})
            data = _post(api, "/v1/datasets/generate", json={"kind": "moons", "n_samples": 40})
            weights = io.BytesIO()
            np.savez(weights, W1=np.ones((1, 2), np.float32), b1=np.zeros(1, np.float32))
            model = _post(
                api,
                "/v1/models/import",
                data={"network_id": network["id"]},
                files={"file": ("w.npz", weights.getvalue(), "application/octet-stream")},
            )
            queued = _post(
                api, f"/v1/models/{model['id']}/evaluate", json={"dataset_id": data["id"]}
            )
            assert queued["status"] == "queued", queued
        server = Server(served.url, served.key, served.log)
        problems: list[str] = []
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = watched_page(context, problems)
            _sign_in(page, server)
            _open_model(page, server, model["id"])
            pending = page.locator(f"[data-evaluation='{queued['id']}']")
            expect(pending).to_have_attribute("data-status", "queued")
            cancel = pending.get_by_role("button", name="Cancel")
            cancel.click()
            expect(page.locator(f"[data-evaluation='{queued['id']}']")).to_have_attribute(
                "data-status", "cancelled"
            )
            expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
            evaluations = page.get_by_role("table", name="Evaluations", exact=True)
            expect(evaluations.get_by_text("cancelled")).to_be_visible()
        finally:
            context.close()
    assert problems == [], f"console errors: {problems}"
