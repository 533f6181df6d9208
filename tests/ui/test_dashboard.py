"""The dashboard in a real headless Chromium against a real ``backprop serve``.

One walk through what a newcomer does: enter the key, generate a 2-D dataset, define a
network, train it and watch the curves, look at the decision surface and the weights,
predict and download the model's exports, then start a long job and cancel it from the
page. Screenshots of each step go to the test's tmp_path. Skipped (with the reason) when
no Chromium is installed; the browser is never downloaded.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ui.conftest import Server, watched_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

UI_DIR = Path(__file__).resolve().parents[2] / "app" / "ui"
TRAIN_TIMEOUT_MS = 180_000  # generous: a shared 2-core CI machine


# Pixel statistics of a canvas: how much is painted, and whether both class colours
# (orange: red well above blue; blue: blue well above red) appear.
CANVAS_STATS = """(canvas) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let painted = 0, orange = 0, blue = 0, total = 0;
  for (let i = 0; i < data.length; i += 4 * 5) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    total++;
    if (r < 240 || g < 240 || b < 240) painted++;
    if (r > b + 60) orange++;
    if (b > r + 60) blue++;
  }
  return { painted: painted / total, orange: orange / total, blue: blue / total };
}"""


def canvas_stats(page: Page, selector: str) -> dict[str, float]:
    stats: dict[str, float] = page.locator(selector).evaluate(CANVAS_STATS)
    return stats


def wait_for_epochs(page: Page, epochs: int) -> None:
    """Until the job page's first training curve has ``epochs`` points."""
    page.wait_for_function(
        f"() => Number(document.querySelector('svg.chart')?.dataset.points) >= {epochs}",
        timeout=TRAIN_TIMEOUT_MS,
    )


def test_dashboard_walkthrough(browser: Browser, server: Server, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = watched_page(context, problems)

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        # First visit: the key prompt, with the CLI command that makes a key.
        page.goto(f"{server.base_url}/")
        expect(page.get_by_text("backprop keys create NAME")).to_be_visible()
        shot("01-key-prompt")
        page.get_by_label("API key", exact=True).fill(server.key)
        page.get_by_label("API key", exact=True).press("Enter")  # keyboard submit
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        assert page.evaluate("localStorage.getItem('backprop.apiKey')") == server.key

        # A 2-D toy dataset; its page plots the points.
        page.get_by_role("link", name="Datasets", exact=True).click()
        page.get_by_label("Kind", exact=True).select_option("moons")
        page.get_by_label("Samples", exact=True).fill("240")
        page.get_by_label("Noise", exact=True).fill("0.15")
        page.get_by_role("button", name="Generate dataset").click()
        expect(page.get_by_role("heading", name="moons")).to_be_visible()
        page.wait_for_function(
            "() => document.querySelector('canvas.surface')?.getAttribute('aria-label')"
            "?.includes('240 points')"
        )
        assert canvas_stats(page, "canvas.surface")["painted"] > 0.01
        shot("02-dataset")

        # A network shaped for the dataset: 2 inputs, tanh 8-8, one sigmoid output.
        page.get_by_role("link", name="Define a network for it").click()
        expect(page.get_by_label("Input size", exact=True)).to_have_value("2")
        expect(page.get_by_label("Activation (output layer)")).to_have_value("sigmoid")
        page.get_by_label("Name", exact=True).fill("moons-net")
        expect(page.locator(".preview svg.netdraw circle")).to_have_count(2 + 8 + 8 + 1)
        shot("03-network-builder")
        page.get_by_role("button", name="Create network").click()
        expect(page.get_by_role("heading", name="moons-net")).to_be_visible()

        # Train it: the job page's curves fill up, then the model is drawn.
        page.get_by_label("Epochs", exact=True).fill("150")
        page.get_by_role("button", name="Start training").click()
        expect(page.get_by_role("heading", name="Job job_")).to_be_visible()
        wait_for_epochs(page, 3)
        shot("04-job-training")
        status = page.locator(".page-header [data-status]")
        expect(status).to_have_attribute("data-status", "succeeded", timeout=TRAIN_TIMEOUT_MS)
        loss_chart = page.locator("svg.chart").first
        expect(loss_chart).to_have_attribute("data-points", "150")
        expect(loss_chart.locator("path[data-series='val_loss']")).to_have_count(1)
        expect(page.locator("canvas.surface[data-model^='mdl_']")).to_have_count(1)
        surface = canvas_stats(page, "canvas.surface")
        assert surface["painted"] > 0.5, surface  # a heat-map, not just points
        assert surface["orange"] > 0.05 and surface["blue"] > 0.05, surface  # both classes
        drawing = page.locator("svg.netdraw")
        expect(drawing.locator("circle")).to_have_count(2 + 8 + 8 + 1)
        expect(drawing.locator("line.edge")).to_have_count(2 * 8 + 8 * 8 + 8 * 1)
        widths = {
            float(w)
            for w in drawing.locator("line.edge").evaluate_all(
                "lines => lines.map(l => l.getAttribute('stroke-width'))"
            )
        }
        assert len(widths) > 10, "line widths should follow the weights"
        shot("05-job-finished")

        # The model page predicts.
        page.locator("a[href^='#/models/mdl_']").first.click()
        expect(page.get_by_role("heading", name="Model mdl_")).to_be_visible()
        page.get_by_label("Inputs", exact=True).fill("-1, 0.5\n2, -0.3")
        page.get_by_role("button", name="Predict", exact=True).click()
        predictions = page.get_by_role("table", name="Predictions")
        expect(predictions.locator("tbody tr")).to_have_count(2)
        for label in predictions.locator("tbody tr td:last-child").all_inner_texts():
            assert label in {"0", "1"}, label
        shot("06-model")
        # Its card, and a download of each export format (fetched with the key).
        expect(page.get_by_role("heading", name="Model card")).to_be_visible()
        expect(page.get_by_role("table", name="Class balance")).to_be_visible()
        for label, suffix, start in (("ONNX", "onnx", b"\x08"), ("Python", "py", b'"""')):
            with page.expect_download() as info:
                page.get_by_role("button", name=f"Download {label}").click()
            assert re.fullmatch(rf"mdl_\w+\.{suffix}", info.value.suggested_filename)
            assert Path(info.value.path()).read_bytes().startswith(start)
        with page.expect_download() as info:
            page.get_by_role("button", name="Download npz").click()
        assert set(np.load(info.value.path())) >= {"W1", "b1", "W3", "b3"}

        # A long job, cancelled from its page while its curve grows.
        page.get_by_role("link", name="Jobs", exact=True).click()
        page.get_by_text("Start a training job").click()
        form = page.get_by_role("form", name="Start a training job")
        for choice in ("Network", "Dataset"):  # the only one of each (option 0 is "Choose")
            select = form.get_by_label(choice, exact=True)
            select.select_option(select.locator("option").nth(1).get_attribute("value"))
        form.get_by_label("Epochs", exact=True).fill("100000")
        form.get_by_role("button", name="Start training").click()
        expect(page.get_by_role("heading", name="Job job_")).to_be_visible()
        wait_for_epochs(page, 2)
        expect(status).to_have_attribute("data-status", "running")
        page.get_by_role("button", name="Cancel job").click()
        expect(status).to_have_attribute("data-status", "cancelled", timeout=60_000)
        expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
        shot("07-job-cancelled")

        page.get_by_role("link", name="Jobs", exact=True).click()
        expect(page.locator("tbody [data-status]")).to_have_count(2)
        expect(page.locator("tbody [data-status='cancelled']")).to_have_count(1)
        expect(page.locator("tbody [data-status='succeeded']")).to_have_count(1)
        shot("08-jobs")

        # The dataset's page offers the model trained on it (the cancelled job kept none).
        page.get_by_role("link", name="Datasets", exact=True).click()
        # The list, not the jobs page it replaces (whose rows link the dataset twice).
        expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
        page.get_by_role("link", name="moons", exact=True).click()
        chooser = page.locator("select[name='surface-model'] option")
        expect(chooser).to_have_count(2)  # "Only the data points" and the model
        expect(chooser.nth(1)).to_have_attribute("value", re.compile(r"^mdl_"))
        expect(page.locator("canvas.surface[data-model^='mdl_']")).to_have_count(1)
        shot("09-dataset-with-model")

        # Deleting it from the list: confirmed in a dialog, then gone (its jobs have ended).
        page.get_by_role("link", name="Datasets", exact=True).click()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete dataset moons").click()
        expect(page.get_by_text("Dataset moons deleted.")).to_be_visible()
        expect(page.get_by_text("No datasets yet")).to_be_visible()
    finally:
        context.close()

    assert problems == [], f"console errors: {problems}"


# --------------------------------------------------------------------------- parsers


def _npz_bytes(save: Any, arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    save(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture
def module_page(browser: Browser) -> Iterator[Page]:
    """A blank page on a made-up origin that serves app/ui from disk (no server needed)."""
    context = browser.new_context()
    origin = "http://dashboard.test"

    def serve_ui(route: Any) -> None:
        path = UI_DIR / route.request.url.removeprefix(f"{origin}/ui/").split("?")[0]
        if route.request.url.startswith(f"{origin}/ui/") and path.is_file():
            kind = "text/javascript" if path.suffix == ".js" else "text/html"
            route.fulfill(status=200, body=path.read_bytes(), content_type=kind)
        else:
            route.fulfill(
                status=200, body=b"<!doctype html><title>t</title>", content_type="text/html"
            )

    context.route(f"{origin}/**", serve_ui)
    page = context.new_page()
    page.goto(f"{origin}/blank")
    try:
        yield page
    finally:
        context.close()


PARSE_NPZ = """async (b64) => {
  const { parseNpz } = await import("/ui/js/npz.js");
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const arrays = await parseNpz(bytes.buffer);
  const plain = [...arrays].map(([k, a]) => [k, { shape: a.shape, data: [...a.data] }]);
  return Object.fromEntries(plain);
}"""


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "deflated"])
def test_npz_parser_reads_numpy_files(module_page: Page, save: Any) -> None:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {
        "W1": rng.normal(size=(3, 2)).astype(np.float32),
        "b1": rng.normal(size=3).astype(np.float64),
        "W2": np.asfortranarray(rng.normal(size=(2, 3))).astype(np.float32, order="F"),
        "counts": np.arange(5, dtype=np.int64) - 2,
        "mask": np.array([True, False, True]),
        "big_endian": np.array([1.5, -2.25], dtype=">f8"),
        "scalar": np.array(0.5, dtype=np.float32),
    }
    encoded = base64.b64encode(_npz_bytes(save, arrays)).decode()
    parsed = module_page.evaluate(PARSE_NPZ, encoded)
    assert set(parsed) == set(arrays)
    for name, array in arrays.items():
        assert parsed[name]["shape"] == list(array.shape), name
        expected = np.ascontiguousarray(array).astype(np.float64).ravel()
        np.testing.assert_array_equal(np.array(parsed[name]["data"]), expected, err_msg=name)


PARSE_SSE = """async (chunks) => {
  const { SseParser } = await import("/ui/js/sse.js");
  const events = [];
  const parser = new SseParser((e) => events.push(e));
  for (const chunk of chunks) parser.feed(chunk);
  return events;
}"""


def test_sse_parser_handles_split_chunks(module_page: Page) -> None:
    stream = (
        ": keep-alive\n\n"
        'id: 1\r\nevent: epoch\r\ndata: {"epoch": 1}\r\n\r\n'
        'event: epoch\ndata:{"epoch": 2,\ndata: "loss": 0.5}\nid: 2\n\n'
        "data: no type\r\r"
        'event: end\ndata: {"status": "succeeded"}\n\n'
        'event: epoch\ndata: {"epoch": 3}\n'  # unterminated: never dispatched
    )
    expected = [
        {"type": "epoch", "data": '{"epoch": 1}', "id": "1"},
        {"type": "epoch", "data": '{"epoch": 2,\n"loss": 0.5}', "id": "2"},
        {"type": "message", "data": "no type", "id": "2"},
        {"type": "end", "data": '{"status": "succeeded"}', "id": "2"},
    ]
    for size in (1, 2, 3, 7, len(stream)):  # every split, including "\r" | "\n"
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert module_page.evaluate(PARSE_SSE, chunks) == expected, size
