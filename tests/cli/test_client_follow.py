"""`backprop train --follow` on a pseudo-terminal: the live progress bar, and Ctrl-C's
question (yes cancels the job, no leaves it running)."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator

import pytest

from tests.cli.conftest import Cli, Running
from tests.cli.pty_process import PtyProcess
from tests.worker.procs import REPO_ROOT

pytestmark = pytest.mark.slow  # a real `serve` process and a client process on a terminal

# Epochs of a job that must still be training when the test presses Ctrl-C: the tiny
# network trains 100,000 epochs in ~5 s here, fast enough to have ended (its bar's last
# frame already in the terminal) by then. 300,000 x 160 rows is within the default
# BACKPROP_MAX_JOB_SAMPLE_EPOCHS (50,000,000).
LONG = 300_000
# Variables that would make rich treat the terminal differently.
RICH_VARIABLES = ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")


@pytest.fixture
def terminal(client_server: Running) -> Iterator[list[PtyProcess]]:
    """Started terminals, killed if a test leaves one running."""
    started: list[PtyProcess] = []
    yield started
    for term in started:
        term.close()


def backprop(started: list[PtyProcess], server: Running, *args: str) -> PtyProcess:
    """``backprop ARGS`` on a new 160-column terminal, with the server in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in RICH_VARIABLES}
    env.update(TERM="xterm-256color", BACKPROP_URL=server.url, BACKPROP_KEY=server.key)
    term = PtyProcess([sys.executable, "-m", "app.cli", *args], env=env, cwd=REPO_ROOT)
    started.append(term)
    return term


def train(
    started: list[PtyProcess], server: Running, dataset: str, network: str, epochs: int
) -> PtyProcess:
    args = ["train", "--dataset", dataset, "--network", network, "--epochs", str(epochs)]
    return backprop(started, server, *args, "--follow")


def test_follow_draws_a_live_bar_with_metrics_speed_and_eta(
    terminal: list[PtyProcess], client_server: Running, dataset_id: str, network_id: str
) -> None:
    term = train(terminal, client_server, dataset_id, network_id, 30)
    status = term.wait()
    text = term.text
    assert status == 0, text
    assert "\x1b[?25l" in term.raw.decode()  # the live display hides the cursor as it draws
    final = [line for line in text.splitlines() if " 30/30 " in line][-1]
    assert re.fullmatch(
        r"epoch ━+ 30/30 loss \S+ acc \S+ val_loss \S+ val_acc \S+ [\d,]+ samples/s ETA 0:00:00",
        final.strip(),
    ), final
    job_id = re.search(r"queued job (job_\w+)", text)
    model_id = re.search(r"^(mdl_\w+)$", text, re.M)
    assert job_id and model_id, text
    job = client_server.get(f"/v1/jobs/{job_id[1]}").json()
    assert (job["status"], job["model_id"]) == ("succeeded", model_id[1])
    assert f"job {job_id[1]} succeeded after 30 epochs: model {model_id[1]}" in text


def _interrupt(term: PtyProcess, answer: str) -> str:
    """Ctrl-C once the bar shows an epoch; answer the question; the job's id."""
    job_id = term.expect(r"queued job (job_\w+)")[1]
    term.expect(rf"epoch ━+ +\d+/{LONG} loss ")
    os.kill(term.process.pid, signal.SIGINT)
    term.expect(rf"Cancel job {job_id}\? \[y/n\]")
    term.send(answer + "\n")
    return job_id


def test_ctrl_c_then_yes_cancels_the_job(
    terminal: list[PtyProcess], client_server: Running, dataset_id: str, network_id: str
) -> None:
    term = train(terminal, client_server, dataset_id, network_id, LONG)
    job_id = _interrupt(term, "y")
    status = term.wait()
    assert status == 130, term.text
    assert f"cancelling job {job_id}" in term.text
    assert re.search(rf"job {job_id} cancelled after \d+ epochs", term.text), term.text
    job = client_server.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and 0 < job["epoch"] < LONG


def test_ctrl_c_then_no_leaves_the_job_running(
    terminal: list[PtyProcess], client_server: Running, cli: Cli, dataset_id: str, network_id: str
) -> None:
    term = train(terminal, client_server, dataset_id, network_id, LONG)
    job_id = _interrupt(term, "n")
    status = term.wait()
    assert status == 130, term.text
    assert f"stopped following; follow again with `backprop jobs follow {job_id}`" in term.text
    job = client_server.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["cancel_requested"]) == ("running", False)

    cli.ok("jobs", "cancel", job_id)  # the next test needs the worker
    assert cli("jobs", "follow", job_id).status == 1
    assert client_server.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_ctrl_c_cancels_a_followed_prediction_run(
    terminal: list[PtyProcess], client_server: Running, cli: Cli, dataset_id: str, network_id: str
) -> None:
    trained = cli("train", "--dataset", dataset_id, "--network", network_id, "--epochs", "2",
                  "--follow")  # fmt: skip
    assert trained.status == 0, trained
    (model_id,) = trained.out.split()
    # The server's one worker busy with a long job: the run stays queued while followed.
    busy = cli.id("train", "--dataset", dataset_id, "--network", network_id, "--epochs", str(LONG))
    term = backprop(terminal, client_server, "predict-batch", model_id, dataset_id)
    run_id = term.expect(r"prediction run (pred_\w+): \d+ rows queued")[1]
    os.kill(term.process.pid, signal.SIGINT)
    term.expect(rf"prediction run {run_id} cancelled")
    assert term.wait() == 130, term.text
    run = client_server.get(f"/v1/predictions/{run_id}").json()
    assert run["status"] == "cancelled", run
    cli.ok("jobs", "cancel", busy)  # the next test needs the worker
