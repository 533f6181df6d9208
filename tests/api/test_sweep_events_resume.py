"""GET /v1/sweeps/{id}/events: every trial event carries the number of its ending (in the
order the endings committed), and a client reconnecting with Last-Event-ID gets only
the endings after it, as on the job stream."""

from __future__ import annotations

from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import run_worker
from tests.api.sweeps import create, make_data, sweep_body, sweep_events


def test_a_reconnecting_client_gets_only_the_trials_it_missed(
    client: ApiClient, db: Database
) -> None:
    data = make_data(client)
    sweep = create(client, sweep_body(data, grid={"job.batch_size": [8, 16, 32]}))
    run_worker(db)
    full = sweep_events(client, sweep["id"])
    assert [e["event"] for e in full] == ["trial"] * 3 + ["end"]
    ids = [e["id"] for e in full[:-1]]
    assert ids == ["1", "2", "3"] and full[-1]["id"] is None
    assert sorted(e["data"]["index"] for e in full[:-1]) == [0, 1, 2]

    after_one = sweep_events(client, sweep["id"], last="1")
    assert after_one == full[1:]
    assert sweep_events(client, sweep["id"], last="3") == full[-1:]
    for junk in ("x", "-1", "1.5", ""):  # not a number of ours: the whole stream
        assert sweep_events(client, sweep["id"], last=junk) == full


def test_cancelled_trials_are_numbered_after_those_that_ended(
    client: ApiClient, db: Database
) -> None:
    data = make_data(client)
    sweep = create(client, sweep_body(data, grid={"job.batch_size": [4, 8, 16]}))
    first = sweep["trials"][0]["job_id"]
    assert client.post(f"/v1/jobs/{first}/cancel").status_code == 202
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 202
    events = sweep_events(client, sweep["id"])
    trials = [(e["id"], e["data"]["index"], e["data"]["status"]) for e in events[:-1]]
    assert trials == [("1", 0, "cancelled"), ("2", 1, "cancelled"), ("3", 2, "cancelled")]
    assert sweep_events(client, sweep["id"], last="2") == events[2:]
    assert events[-1]["data"]["status"] == "cancelled"


def test_halving_numbers_each_rung_ending(client: ApiClient, db: Database) -> None:
    data = make_data(client)
    body = sweep_body(
        data,
        grid={"job.optimizer.learning_rate": [0.001, 0.01, 0.1, 0.3]},
        strategy={"name": "halving", "factor": 2, "min_epochs": 1},
        job={"epochs": 4, "batch_size": 16, "validation_split": 0.2, "seed": 2},
    )
    sweep = create(client, body)
    run_worker(db)
    events = sweep_events(client, sweep["id"])
    trials = events[:-1]
    # Rungs of 1, 2 and 4 epochs: 4 + 2 + 1 endings. A promoted trial's earlier rung
    # ending is not replayed (its trial has moved on), so the replay shows each trial
    # once, at its latest ending, in ending order.
    numbers = [int(e["id"]) for e in trials]
    assert len(trials) == 4 and numbers == sorted(numbers)
    assert numbers[-1] == 7
    assert [e["data"]["epochs_run"] for e in trials] == [1, 1, 2, 4]
    assert sweep_events(client, sweep["id"], last=str(numbers[1])) == events[2:]
