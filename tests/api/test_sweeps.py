"""Sweeps through the API: grid, random (each distribution) and halving (promoted trials
continue from their checkpoints), the per-owner job limit, cancel, list and events."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs import sweep_advance
from app.jobs.worker import Worker
from app.services import sweeps as sweeps_service
from app.services.errors import Conflict
from app.storage.database import Database
from app.storage.tables import Job, JobStatus, Model, Sweep
from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient, run_worker
from tests.api.sweeps import N_TRAIN, create, make_data, sweep_body, sweep_events


def test_grid_runs_every_combination_and_ranks_them(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    grid = {"job.optimizer.learning_rate": [0.01, 0.3], "job.batch_size": [8, 32]}
    sweep = create(client, sweep_body(data, grid=grid))
    assert sweep["status"] == "queued" and sweep["best"] is None
    assert [t["params"] for t in sweep["trials"]] == [
        {"job.optimizer.learning_rate": lr, "job.batch_size": b}
        for lr in (0.01, 0.3)
        for b in (8, 32)
    ]
    run_worker(db)
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded" and done["finished_at"] is not None
    trials = done["trials"]
    assert [t["status"] for t in trials] == ["succeeded"] * 4
    for trial in trials:
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        assert (
            job["options"]["optimizer"]["learning_rate"]
            == trial["params"]["job.optimizer.learning_rate"]
        )
        assert job["options"]["batch_size"] == trial["params"]["job.batch_size"]
        assert job["model_id"] == trial["model_id"] is not None
        assert trial["score"] == job["metrics"]["val_accuracy"]
        assert trial["epochs_run"] == 3
    best = max(trials, key=lambda t: t["score"])
    assert done["best"]["score"] == best["score"] and done["maximise"] is True
    assert done["best"]["model_id"] is not None


def test_network_layers_vary_as_whole_lists_and_losses_are_minimised(
    client: ApiClient, db: Database
) -> None:
    data = make_data(client)
    out = {"units": 1, "activation": "sigmoid"}
    layers = [[{"units": 2, "activation": "relu"}, out], [{"units": 6, "activation": "tanh"}, out]]
    sweep = create(client, sweep_body(data, grid={"network.layers": layers}, metric="val_loss"))
    run_worker(db)
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    widths = []
    for trial in done["trials"]:
        model = client.get(f"/v1/models/{trial['model_id']}").json()
        widths.append(model["architecture"]["layers"][0]["units"])
    assert widths == [2, 6]
    assert done["maximise"] is False
    assert done["best"]["score"] == min(t["score"] for t in done["trials"])


def test_random_draws_each_distribution_reproducibly(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    grid = {
        "job.optimizer.learning_rate": {"log_uniform": [0.001, 0.1]},
        "job.l2": {"uniform": [0.0, 0.01]},
        "job.batch_size": {"int_uniform": [4, 9]},
        "job.shuffle": [True, False],
    }
    body = sweep_body(data, grid=grid, strategy={"name": "random", "trials": 12, "seed": 4})
    first = create(client, body)
    again = create(client, body)
    other = create(client, {**body, "strategy": {"name": "random", "trials": 12, "seed": 5}})
    params = [t["params"] for t in first["trials"]]
    assert params == [t["params"] for t in again["trials"]]
    assert params != [t["params"] for t in other["trials"]]
    assert len(params) == 12
    rates = [p["job.optimizer.learning_rate"] for p in params]
    assert all(0.001 <= r <= 0.1 for r in rates) and len(set(rates)) == 12
    assert any(r < 0.01 for r in rates) and any(r > 0.01 for r in rates)  # log scale
    assert all(0.0 <= p["job.l2"] <= 0.01 for p in params)
    sizes = [p["job.batch_size"] for p in params]
    assert all(isinstance(s, int) and 4 <= s <= 9 for s in sizes) and len(set(sizes)) > 2
    assert {p["job.shuffle"] for p in params} == {True, False}
    run_worker(db)
    done = client.get(f"/v1/sweeps/{first['id']}").json()
    assert done["status"] == "succeeded"
    for trial in done["trials"]:
        options = client.get(f"/v1/jobs/{trial['job_id']}").json()["options"]
        assert options["batch_size"] == trial["params"]["job.batch_size"]
        assert options["l2"] == trial["params"]["job.l2"]


def test_halving_continues_the_best_from_their_checkpoints(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    rates = [0.001, 0.01, 0.05, 0.2]
    body = sweep_body(
        data,
        job={"epochs": 8, "batch_size": 16, "validation_split": 0.2, "seed": 2},
        grid={"job.optimizer.learning_rate": rates},
        strategy={"name": "halving", "factor": 2, "min_epochs": 2},
        metric="val_loss",
    )
    sweep = create(client, body)
    assert [t["epochs"] for t in sweep["trials"]] == [2, 2, 2, 2]  # rung 0
    run_worker(db)
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    trials = done["trials"]
    assert sorted(t["epochs_run"] for t in trials) == [2, 2, 4, 8]  # rungs 2 -> 4 -> 8
    jobs = {t["index"]: client.get(f"/v1/jobs/{t['job_id']}").json() for t in trials}
    # Each rung promoted the best half by val_loss at the rung's end.
    at_two = {i: job["history"][1]["val_loss"] for i, job in jobs.items()}
    promoted = sorted(at_two, key=at_two.__getitem__)[:2]
    assert {t["index"] for t in trials if t["epochs_run"] >= 4} == set(promoted)
    at_four = {i: jobs[i]["history"][3]["val_loss"] for i in promoted}
    winner = min(at_four, key=at_four.__getitem__)
    final = jobs[winner]
    assert final["epoch"] == final["epochs"] == 8 and final["status"] == "succeeded"
    assert [e["epoch"] for e in final["history"]] == list(range(1, 9))
    # Continued, not restarted: the rows trained are those of 8 epochs, no more.
    with db.read_session() as session:
        trained = session.scalar(select(Job.samples_trained).where(Job.id == final["id"]))
    assert trained == 8 * N_TRAIN
    assert final["options"]["epochs"] == 8
    # Every trial has one model (the promoted ones' rung models were replaced).
    models = client.get("/v1/models", params={"limit": 100}).json()["items"]
    assert sorted(m["id"] for m in models) == sorted(t["model_id"] for t in trials)
    assert done["best"]["score"] == min(t["score"] for t in trials)


def _halving_stopped_after_a_promotion(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """A halving sweep of 4 trials (factor 2) whose worker stopped right after promoting
    two of them (queued for their next rung): (its body, the promoted trials' job ids,
    every trial's model id by job id)."""
    body = sweep_body(
        make_data(client),
        job={"epochs": 8, "batch_size": 16, "validation_split": 0.2, "seed": 2},
        grid={"job.optimizer.learning_rate": [0.001, 0.01, 0.05, 0.2]},
        strategy={"name": "halving", "factor": 2, "min_epochs": 2},
        metric="val_loss",
    )
    sweep = create(client, body)
    settings = Settings(database_url=db.url, checkpoint_seconds=0, poll_seconds=0.05)
    worker = Worker(db, settings, "test-worker")
    promote = sweep_advance._promote
    promoted: list[str] = []

    def then_stop(session: Session, *args: Any) -> list[dict[str, Any]]:
        rows = promote(session, *args)
        promoted.extend(row["id"] for row in rows)
        if len(promoted) == 2:  # the worker stops before it claims the promoted trials
            worker.stopping.set()
        return rows

    with monkeypatch.context() as patch:
        patch.setattr(sweep_advance, "_promote", then_stop)
        worker.run(burst=True)
    assert len(promoted) == 2
    trials = client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"]
    assert {t["status"] for t in trials if t["job_id"] in promoted} == {"queued"}
    models = {t["job_id"]: t["model_id"] for t in trials}
    assert all(models[job_id] for job_id in promoted)  # kept: their rung-0 models
    return sweep, promoted, models


def test_cancelling_halving_after_a_promotion_keeps_the_promoted_trials_rung_models(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, promoted, rung_models = _halving_stopped_after_a_promotion(client, db, monkeypatch)
    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel").json()
    trials = {t["job_id"]: t for t in cancelled["trials"]}
    for job_id in promoted:
        assert trials[job_id]["status"] == "cancelled"
        assert trials[job_id]["model_id"] == rung_models[job_id]
        assert trials[job_id]["score"] is not None
    best = cancelled["best"]
    assert best["job_id"] in promoted  # the rung's best were promoted: their models count
    assert client.get(f"/v1/models/{best['model_id']}").status_code == 200


def test_a_promoted_trials_next_rung_replaces_its_rung_model(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, promoted, rung_models = _halving_stopped_after_a_promotion(client, db, monkeypatch)
    # Work built on a rung model keeps it (detached from its trial) when the trial's next
    # rung replaces it: a queued prediction run reads one, the other is evaluated. (The
    # sweep's trials are claimed before the later prediction run: a sweep's trials are
    # as old as their sweep.) The rung-1 model of the trial promoted again is deleted.
    read, evaluated = rung_models[promoted[0]], rung_models[promoted[1]]
    run = client.post(f"/v1/models/{read}/predictions", json={"dataset_id": sweep["dataset_id"]})
    assert run.status_code == 202, run.text
    evaluation = client.post(
        f"/v1/models/{evaluated}/evaluate", json={"dataset_id": sweep["dataset_id"]}
    )
    assert evaluation.status_code in (200, 201, 202), evaluation.text
    run_worker(db)
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    assert sorted(t["epochs_run"] for t in done["trials"]) == [2, 2, 4, 8]
    models = {t["job_id"]: t["model_id"] for t in done["trials"]}
    assert all(models.values())
    assert models[promoted[0]] != read and models[promoted[1]] != evaluated
    with db.read_session() as session:
        kept = select(Model.id, Model.job_id).where(Model.id.in_([read, evaluated]))
        detached = {model_id: job_id for model_id, job_id in session.execute(kept)}
        every = list(session.scalars(select(Model.id)))
    assert detached == {read: None, evaluated: None}  # kept, as models of their own
    # One model per trial and the two kept: the rung-1 model of the trial that went on
    # to rung 2 was deleted when its rung-2 model was stored.
    assert sorted(every) == sorted([*models.values(), read, evaluated])
    assert client.get(f"/v1/predictions/{run.json()['id']}").json()["status"] == "succeeded"
    # Detached, each still says what it was trained on, and lists under its dataset.
    for model_id in (read, evaluated):
        kept_model = client.get(f"/v1/models/{model_id}").json()
        assert (kept_model["job_id"], kept_model["dataset_id"]) == (None, sweep["dataset_id"])
        assert kept_model["card"]["training_data"]["dataset_id"] == sweep["dataset_id"]
        card = client.get(f"/v1/models/{model_id}/card").text
        assert "Training job: none (trained here; no job holds it now)" in card
    listed = client.get(f"/v1/models?dataset_id={sweep['dataset_id']}&limit=500").json()
    assert {m["id"] for m in listed["items"]} == set(every)
    # Its dataset deleted, a detached model is still told apart from an imported one.
    assert client.delete(f"/v1/datasets/{sweep['dataset_id']}").status_code == 204
    card = client.get(f"/v1/models/{read}/card").text
    assert "Not recorded: the dataset is gone, or was not recorded with this model." in card
    assert "Training job: none (trained here; no job holds it now)" in card
    detached = client.get(f"/v1/models/{read}").json()
    assert detached["dataset_id"] is None and detached["card"]["lineage"]["trained_here"]


def test_a_sweep_is_one_active_job(make_client: MakeClient, keys: Keys, db: Database) -> None:
    alice = make_client(keys.alice, max_active_jobs=2)
    data = make_data(alice)
    grid = {"job.optimizer.learning_rate": [0.01, 0.02, 0.03, 0.04, 0.05]}
    create(alice, sweep_body(data, grid=grid))  # five trials, one active job
    create(alice, sweep_body(data))
    response = alice.post("/v1/sweeps", json=sweep_body(data))
    assert response.status_code == 429, response.text
    assert "BACKPROP_MAX_ACTIVE_JOBS=2" in response.json()["detail"][0]["msg"]


def test_cancel_stops_the_sweep_and_keeps_finished_models(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    finished = create(client, sweep_body(data))
    run_worker(db)
    assert client.post(f"/v1/sweeps/{finished['id']}/cancel").status_code == 409
    sweep = create(client, sweep_body(data, grid={"job.batch_size": [4, 8, 16]}))
    first = sweep["trials"][0]["job_id"]
    # One trial finishes on its own first (its job cancelled would also count as ended).
    assert client.post(f"/v1/jobs/{sweep['trials'][1]['job_id']}/cancel").status_code == 202
    response = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 202, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    assert {t["status"] for t in cancelled["trials"]} == {"cancelled"}
    run_worker(db)  # nothing of it runs any more
    assert client.get(f"/v1/jobs/{first}").json()["status"] == "cancelled"
    assert client.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "cancelled"
    kept = client.get(f"/v1/sweeps/{finished['id']}").json()
    for trial in kept["trials"]:
        assert client.get(f"/v1/models/{trial['model_id']}").status_code == 200


def test_concurrent_cancels_cancel_once(client: ApiClient, db: Database) -> None:
    """Sixteen cancels at once, ten times: one 202, fifteen 409s each time (each re-checks
    under the sweep's lock), and no deadlock on PostgreSQL (the cancels take turns: before
    that, ~1.8 deadlocks a round)."""
    data = make_data(client)
    for _ in range(10):
        sweep = create(client, sweep_body(data, grid={"job.batch_size": [4, 8, 16]}))
        with db.read_session() as session:
            owner_id = session.scalars(select(Sweep.owner_id).where(Sweep.id == sweep["id"])).one()
        start = threading.Barrier(16, timeout=30)
        with ThreadPoolExecutor(16) as pool:
            calls = [pool.submit(_cancel_at, start, db, owner_id, sweep["id"]) for _ in range(16)]
            answers = sorted(call.result() for call in calls)
        assert answers == ["cancelled"] + ["conflict"] * 15
        assert client.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "cancelled"


def _cancel_at(start: threading.Barrier, db: Database, owner_id: int, sweep_id: str) -> str:
    start.wait()
    try:
        sweeps_service.cancel_sweep(db, owner_id=owner_id, sweep_id=sweep_id)
    except Conflict:
        return "conflict"
    return "cancelled"


def test_list_events_and_ownership(client: ApiClient, bob: ApiClient, db: Database) -> None:
    data = make_data(client)
    sweep = create(client, sweep_body(data))
    assert bob.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert bob.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 404
    assert bob.get("/v1/sweeps").json()["total"] == 0
    listed = client.get("/v1/sweeps").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == sweep["id"]
    run_worker(db)
    response = client.get(f"/v1/sweeps/{sweep['id']}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block.strip()]
    names = [
        line.split(": ", 1)[1]
        for b in events
        for line in b.split("\n")
        if line.startswith("event:")
    ]
    assert names == ["trial", "trial", "end"]
    end = json.loads(events[-1].split("data: ", 1)[1])
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert end == {"status": "succeeded", "best": done["best"]}
    assert bob.get(f"/v1/sweeps/{sweep['id']}/events").status_code == 404


def test_trials_leave_diagnostics_off_unless_the_sweep_asks(
    client: ApiClient, db: Database
) -> None:
    data = make_data(client)
    plain = create(client, sweep_body(data))
    asked = create(client, sweep_body(data, job={**sweep_body(data)["job"], "diagnostics": True}))
    by_grid = create(client, sweep_body(data, grid={"job.diagnostics": [True, False]}))
    run_worker(db)

    def layers_and_option(sweep: dict[str, object]) -> list[tuple[bool, bool]]:
        done = client.get(f"/v1/sweeps/{sweep['id']}").json()
        assert done["status"] == "succeeded"
        seen = []
        for trial in done["trials"]:
            job = client.get(f"/v1/jobs/{trial['job_id']}").json()
            has_layers = all(entry["layers"] is not None for entry in job["history"])
            seen.append((job["options"]["diagnostics"], has_layers))
        return seen

    assert layers_and_option(plain) == [(False, False), (False, False)]
    assert layers_and_option(asked) == [(True, True), (True, True)]
    assert layers_and_option(by_grid) == [(True, True), (False, False)]
    # The stored sweep body is the one given: the default belongs to the trials.
    assert "diagnostics" not in client.get(f"/v1/sweeps/{plain['id']}").json()["job"]


def test_a_halving_sweep_whose_last_rung_failed_succeeds_with_an_earlier_best(
    client: ApiClient, db: Database
) -> None:
    """The sweep's status agrees with its best: a trial that succeeded at an earlier rung
    (and kept its model) makes the sweep succeed though every trial of the last failed."""
    data = make_data(client)
    body = sweep_body(
        data,
        job={"epochs": 4, "batch_size": 16, "validation_split": 0.2, "seed": 2},
        strategy={"name": "halving", "factor": 2, "min_epochs": 2},
        metric="val_loss",
    )
    sweep = create(client, body)
    first, second = (t["job_id"] for t in sweep["trials"])
    with db.session() as session:  # as the trials end: the first at rung 2, the second at 4
        for job_id, status, epochs in ((first, "succeeded", 2), (second, "failed", 4)):
            job = session.get(Job, job_id)
            assert job is not None
            job.status, job.epochs = status, epochs
    with db.session() as session:
        sweep_advance.trials_ended(session, [second])
    with db.read_session() as session:
        row = session.get(Sweep, sweep["id"])
        assert row is not None and row.status == "succeeded"


def test_halving_promotes_a_trial_once_it_is_certain_and_the_same_as_at_the_rungs_end(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each promotion, with the number of the rung's trials still queued or running then.
    promotions: list[tuple[int, int]] = []
    promote = sweep_advance._promote

    def recording(session: Session, sweep: Any, candidates: Any, slots: int, following: int):
        promoted = promote(session, sweep, candidates, slots, following)
        unfinished = session.scalar(
            select(func.count()).where(
                Job.sweep_id == sweep.id,
                Job.epochs < following,
                Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
            )
        )
        promotions.append((len(promoted), int(unfinished or 0)))
        return promoted

    monkeypatch.setattr(sweep_advance, "_promote", recording)
    data = make_data(client)
    body = sweep_body(
        data,
        # Nine batch sizes: no two trials train in one pack, so they end one by one.
        grid={"job.batch_size": [4, 5, 6, 7, 8, 9, 10, 11, 12]},
        job={"epochs": 3, "validation_split": 0.2, "seed": 2},
        strategy={"name": "halving", "factor": 3, "min_epochs": 1},
        metric="val_loss",
    )
    sweep = create(client, body)
    run_worker(db)  # one worker: the trials end one at a time
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert done["status"] == "succeeded"
    trials = done["trials"]
    jobs = {t["index"]: client.get(f"/v1/jobs/{t['job_id']}").json() for t in trials}
    # The promoted are the best third by val_loss at the first rung, as a barrier decides.
    at_one = {i: job["history"][0]["val_loss"] for i, job in jobs.items()}
    best_three = set(sorted(at_one, key=at_one.__getitem__)[:3])
    assert {t["index"] for t in trials if t["epochs_run"] == 3} == best_three
    assert sorted(t["epochs_run"] for t in trials) == [1] * 6 + [3] * 3
    # ... but the first was promoted while 2 of the rung's trials were still to end: with
    # 7 of 9 ended, the best of the 7 was certain to be in the top 3.
    assert promotions[0] == (1, 2)
    assert sum(count for count, _ in promotions) == 3
    # Its continuation waited for the rung's own trials (they go first in the queue).
    events = {int(e["id"]): e["data"] for e in sweep_events(client, sweep["id"])[:-1]}
    first_continued = min(n for n, e in events.items() if e["epochs_run"] == 3)
    last_first_rung = max(n for n, e in events.items() if e["epochs_run"] == 1)
    assert first_continued > last_first_rung


def test_a_cancelled_halving_sweep_lets_go_of_its_paused_checkpoints(
    client: ApiClient, db: Database
) -> None:
    data = make_data(client)
    body = sweep_body(
        data,
        grid={"job.batch_size": [4, 8, 16]},
        strategy={"name": "halving", "factor": 3, "min_epochs": 1},
    )
    sweep = create(client, body)
    sweep_id, trials = sweep["id"], sweep["trials"]
    paused, running = trials[0]["job_id"], trials[1]["job_id"]
    with db.session() as session:  # one trial paused at its rung, one still training
        session.execute(
            update(Job)
            .where(Job.id == paused)
            .values(status=JobStatus.SUCCEEDED, checkpoint_sha256="a" * 64, checkpoint_epoch=1)
        )
        session.execute(
            update(Job)
            .where(Job.id == running)
            .values(status=JobStatus.RUNNING, checkpoint_sha256="b" * 64)
        )
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 202

    def checkpoints() -> dict[str, str | None]:
        with db.read_session() as session:
            rows = session.execute(
                select(Job.id, Job.checkpoint_sha256).where(Job.sweep_id == sweep_id)
            )
            return {job_id: sha for job_id, sha in rows}

    assert checkpoints()[paused] is None  # the blob is gc's now
    assert checkpoints()[running] == "b" * 64  # its worker still holds it
    with db.session() as session:  # the running trial stops, as its worker ends it
        session.execute(update(Job).where(Job.id == running).values(status=JobStatus.CANCELLED))
        sweep_advance.trials_ended(session, [running])
    assert checkpoints()[running] is None
