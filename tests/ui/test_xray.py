"""The job page's X-ray in Chromium: per-layer small multiples, weight histograms, the
network with its dead units, and the findings banner, for a finished job whose first
layer was imported dead (a bias of -100 on every unit)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.ui.conftest import Server, watched_page
from tests.weights import dead_layer_npz

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAIN_TIMEOUT_S = 180.0
EPOCHS = 6
LAYERS = [
    {"units": 8, "activation": "relu"},
    {"units": 8, "activation": "relu"},
    {"units": 1, "activation": "sigmoid"},
]


def finished_dead_job(server: Server) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as api:
        data = api.post(
            "/v1/datasets/generate", json={"kind": "moons", "n_samples": 200, "noise": 0.1}
        ).json()
        network = api.post(
            "/v1/networks", json={"name": "dead-net", "input_size": 2, "layers": LAYERS}
        ).json()
        model = api.post(
            "/v1/models/import",
            data={"network_id": network["id"]},
            files={"file": ("w.npz", dead_layer_npz(network), "application/octet-stream")},
        ).json()
        job = api.post(
            "/v1/jobs",
            json={
                "network_id": network["id"],
                "dataset_id": data["id"],
                "init_model_id": model["id"],
                "epochs": EPOCHS,
            },
        ).json()
        deadline = time.monotonic() + TRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            job = api.get(f"/v1/jobs/{job['id']}").json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
    assert job["status"] == "succeeded", job
    return dict(job)


def test_the_xray_panel_and_the_findings_banner(
    browser: Browser, server: Server, tmp_path: Path
) -> None:
    job = finished_dead_job(server)
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = watched_page(context, problems)
        page.goto(f"{server.base_url}/")
        page.get_by_label("API key", exact=True).fill(server.key)
        page.get_by_label("API key", exact=True).press("Enter")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        page.goto(f"{server.base_url}/#/jobs/{job['id']}")
        expect(page.get_by_role("heading", name=f"Job {job['id']}")).to_be_visible()

        banner = page.get_by_role("status", name="Findings")
        expect(banner.locator("li")).to_have_count(2)
        expect(banner.locator("li[data-kind='dead_units']")).to_have_count(2)
        expect(banner).to_contain_text("100% of layer 1's units were dead")

        panel = page.get_by_role("region", name="Layer statistics")
        for stat in ("grad_norm", "update_ratio", "units"):
            cells = panel.locator(f".xray-cell[data-stat='{stat}'] svg.spark")
            expect(cells).to_have_count(len(LAYERS))
        dead_share = panel.locator(".xray-cell[data-stat='units'][data-layer='1'] svg")
        expect(dead_share).to_have_attribute("data-points", str(EPOCHS))
        expect(dead_share.locator(".spark-value")).to_have_text("100.0%")

        epoch = panel.get_by_label("Epoch of the histograms")
        expect(epoch).to_have_value(str(EPOCHS))  # the last epoch is always a snapshot
        expect(panel.locator(".xray-hist svg.hist")).to_have_count(len(LAYERS))
        assert panel.locator(".xray-hist rect.hist-bar").count() > 0
        expect(panel.locator("svg.netdraw circle.node-dead")).to_have_count(16)
        expect(panel).to_contain_text(f"16 dead units in epoch {EPOCHS}")
        page.screenshot(path=str(tmp_path / "xray.png"), full_page=True)

        # The model cards tell the imported initial model from the one the job trained
        # (the card's lineage.trained_here).
        page.goto(f"{server.base_url}/#/models/{job['init_model_id']}")
        expect(page.get_by_text("Not recorded: the model was imported.")).to_be_visible()
        expect(page.get_by_text("none (imported)")).to_be_visible()
        page.goto(f"{server.base_url}/#/models/{job['model_id']}")
        expect(page.locator(f"a[href='#/jobs/{job['id']}']").first).to_be_visible()
        expect(page.get_by_text("none (imported)")).to_have_count(0)
        assert problems == []
    finally:
        context.close()
