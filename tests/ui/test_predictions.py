"""The model page's "Batch predictions" card in a real browser against `backprop serve`:
run the model over a dataset, watch the run finish, download its CSV; and the Evaluate
card following an evaluation that a worker scores."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.ui.conftest import Server, watched_page
from tests.ui.test_evaluation import _open_model, _sign_in, _trained_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_run_a_batch_prediction_and_download_it(
    browser: Browser, server: Server, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as api:
        model_id, held_out = _trained_model(api)
        answer = api.post(
            f"/v1/models/{model_id}/predict",
            json={"x": api.get(f"/v1/datasets/{held_out}/data?limit=120").json()["x"]},
        ).json()
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    try:
        page = watched_page(context, problems)
        _sign_in(page, server)
        _open_model(page, server, model_id)

        form = page.get_by_role("form", name="Batch predictions")
        form.get_by_label("Dataset", exact=True).select_option(held_out)
        form.get_by_role("button", name="Run").click()
        runs = page.get_by_role("table", name="Prediction runs")
        row = runs.locator("tbody tr").first
        expect(row.locator("[data-status]")).to_have_attribute("data-status", "succeeded")
        expect(row.locator("progress")).to_have_attribute("value", "120")
        with page.expect_download() as info:
            row.get_by_role("button", name="csv").click()
        target = tmp_path / "run.csv"
        info.value.save_as(target)
        lines = list(csv.reader(io.StringIO(target.read_text())))
        assert lines[0] == ["output_0", "label"] and len(lines) == 121
        assert [line[1] for line in lines[1:]] == [str(label) for label in answer["labels"]]
        page.screenshot(path=str(tmp_path / "predictions.png"), full_page=True)

        # Delete the ended run (confirmed): it leaves the table, and the API.
        run_id = row.get_attribute("data-prediction")
        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name=f"Delete prediction run {run_id}").click()
        expect(runs.locator(f"tr[data-prediction='{run_id}']")).to_have_count(0)
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as api:
            assert api.get(f"/v1/predictions/{run_id}").status_code == 404
    finally:
        context.close()
    assert problems == [], f"console errors: {problems}"
