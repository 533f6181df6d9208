"""The sweep page in a real headless Chromium against ``backprop serve``: a grid sweep run
by the worker shows its leaderboard (sorted by score, re-sorted by a click), a score plot
per parameter and the best trials' curves. Skipped (with the reason) without Chromium."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.ui.conftest import UI_TIMEOUT_MS, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAIN_TIMEOUT_S = 180.0  # generous: a shared 2-core machine


def _finished_sweep(api: httpx.Client) -> dict[str, object]:
    data = api.post("/v1/datasets/generate", json={"kind": "moons", "n_samples": 120})
    assert data.status_code == 201, data.text
    body = {
        "name": "moons-rates",
        "dataset_id": data.json()["id"],
        "network": {
            "input_size": 2,
            "layers": [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        },
        "job": {"epochs": 8, "batch_size": 16},
        "grid": {"job.optimizer.learning_rate": [0.001, 0.01, 0.1], "job.batch_size": [8, 32]},
        "strategy": {"name": "grid"},
        "metric": "val_loss",
    }
    created = api.post("/v1/sweeps", json=body)
    assert created.status_code == 202, created.text
    sweep_id = created.json()["id"]
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while (state := api.get(f"/v1/sweeps/{sweep_id}").json())["status"] != "succeeded":
        assert time.monotonic() < deadline and state["status"] in ("queued", "running"), state
        time.sleep(0.5)
    return dict(state)


def test_the_sweep_page(browser: Browser, server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as api:
        sweep = _finished_sweep(api)
    page = browser.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{server.base_url}/")
    page.get_by_label("API key", exact=True).fill(server.key)
    page.get_by_label("API key", exact=True).press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.get_by_role("link", name="Sweeps").click()
    page.get_by_role("link", name="moons-rates").click()
    expect(page.get_by_role("heading", name="moons-rates")).to_be_visible()

    rows = page.locator("tr[data-trial]")
    expect(rows).to_have_count(6)
    scores = [
        float(s)
        for s in rows.locator("td[data-score]").evaluate_all("c => c.map(e => e.dataset.score)")
    ]
    assert scores == sorted(scores)  # val_loss: lowest first
    assert int(rows.first.get_attribute("data-trial") or -1) == sweep["best"]["index"]  # type: ignore[index]
    page.locator("button[data-sort='score']").click()  # again: descending
    expect(page.locator("th[aria-sort='descending']")).to_have_count(1)
    flipped = [
        float(s)
        for s in rows.locator("td[data-score]").evaluate_all("c => c.map(e => e.dataset.score)")
    ]
    assert flipped == sorted(scores, reverse=True)

    for path in ("job.optimizer.learning_rate", "job.batch_size"):
        expect(page.locator(f"svg[data-path='{path}'] circle.sweep-point")).to_have_count(6)
    expect(page.locator("svg[data-curves='3'] path[data-trial]")).to_have_count(3)

    # The jobs page shows each trial as its sweep and index (a trial has no network row),
    # and a trial's job page links back to its sweep.
    page.get_by_role("link", name="Jobs", exact=True).click()
    trial = sweep["trials"][0]  # type: ignore[index]
    row = page.locator(f"tr[data-job='{trial['job_id']}']")
    expect(row.get_by_role("link", name="moons-rates")).to_have_attribute(
        "href", f"#/sweeps/{sweep['id']}"
    )
    expect(row).to_contain_text(f"trial {trial['index']}")
    expect(row).not_to_contain_text("deleted network")
    row.get_by_role("link", name=trial["job_id"]).click()
    expect(page.get_by_role("link", name=str(sweep["id"]))).to_have_attribute(
        "href", f"#/sweeps/{sweep['id']}"
    )
