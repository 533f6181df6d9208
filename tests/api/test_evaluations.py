"""POST /v1/models/{id}/evaluate and GET /v1/models/{id}/evaluations: the scores of what
predict answers on the dataset's rows, stored with the model and shown on its card.
(The metric formulas themselves are checked against scikit-learn in
tests/engine/test_evaluation.py.)"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from app.config import Settings
from app.engine.model import Model as EngineModel
from app.engine.network import Network
from app.engine.scoring import BLOCK_ROWS, forward_in_blocks
from app.jobs.worker import Worker
from app.services import evaluations
from app.storage.database import Database
from app.storage.tables import Dataset, Evaluation, Job
from app.storage.tables import Model as ModelRow
from tests.api.client import ApiClient
from tests.api.conftest import import_model, make_dataset, make_network

RNG = np.random.default_rng(7)
X = RNG.normal(0, 1, (60, 2)).round(3).tolist()


def _config(task: str, classes: list[Any] | None) -> dict[str, Any]:
    return {
        "format": "backprop-mlp",
        "version": 1,
        "task": task,
        "classes": classes,
        "standardize": False,
    }


def _binary_model(client: ApiClient) -> dict[str, Any]:
    network = make_network(client)
    return import_model(client, network, _config("binary", ["no", "yes"]))


def _predict(client: ApiClient, model_id: str, x: list[list[float]]) -> dict[str, Any]:
    response = client.post(f"/v1/models/{model_id}/predict", json={"x": x})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _evaluate(client: ApiClient, model_id: str, dataset_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/models/{model_id}/evaluate", json={"dataset_id": dataset_id})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_binary_scores_are_those_of_the_predictions(client: ApiClient) -> None:
    model = _binary_model(client)
    y = ["yes" if a * b > 0 else "no" for a, b in X]
    dataset = make_dataset(client, x=X, y=y)
    got = _evaluate(client, model["id"], dataset["id"])
    answer = _predict(client, model["id"], X)
    p = np.asarray(answer["outputs"], dtype=np.float64)[:, 0]

    assert got["task"] == "binary" and got["n_samples"] == 60
    assert got["classes"] == ["no", "yes"] and got["model_id"] == model["id"]
    assert got["dataset_id"] == dataset["id"] and got["id"].startswith("ev_")
    pairs = Counter(zip(y, answer["labels"], strict=True))
    assert got["confusion_matrix"] == [
        [pairs["no", "no"], pairs["no", "yes"]],
        [pairs["yes", "no"], pairs["yes", "yes"]],
    ]
    assert math.isclose(got["accuracy"], (pairs["no", "no"] + pairs["yes", "yes"]) / 60)
    truth = np.asarray([label == "yes" for label in y])
    expected_loss = -np.mean(np.log(np.where(truth, p, 1 - p)))
    assert math.isclose(got["log_loss"], expected_loss, rel_tol=1e-5)
    wins = [(pp > pn) + 0.5 * (pp == pn) for pp in p[truth] for pn in p[~truth]]
    assert math.isclose(got["roc_auc"], float(np.mean(wins)), rel_tol=1e-9)
    assert [c["support"] for c in got["per_class"]] == [y.count("no"), y.count("yes")]
    yes = got["per_class"][1]
    found = pairs["yes", "yes"]
    assert math.isclose(yes["recall"], found / y.count("yes"))
    assert math.isclose(yes["precision"], found / answer["labels"].count("yes"))
    curve = got["roc_curve"]
    assert curve["fpr"][0] == curve["tpr"][0] == 0 and curve["fpr"][-1] == curve["tpr"][-1] == 1
    assert math.isclose(got["macro"]["f1"], np.mean([c["f1"] for c in got["per_class"]]))


def test_multiclass_and_regression(client: ApiClient) -> None:
    net3 = make_network(
        client, layers=[{"units": 5, "activation": "tanh"}, {"units": 3, "activation": "softmax"}]
    )
    model = import_model(client, net3, _config("multiclass", ["a", "b", "c"]))
    y = ["abc"[i % 3] for i in range(60)]
    got = _evaluate(client, model["id"], make_dataset(client, x=X, y=y)["id"])
    labels = _predict(client, model["id"], X)["labels"]
    assert got["task"] == "multiclass" and len(got["confusion_matrix"]) == 3
    assert math.isclose(got["accuracy"], np.mean([a == b for a, b in zip(y, labels, strict=True)]))
    assert got["roc_auc"] is not None and got["roc_curve"] is None

    net_r = make_network(
        client,
        layers=[{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "linear"}],
        loss="mse",
    )
    model = import_model(client, net_r, _config("regression", None))
    targets = [[a + b, a - b] for a, b in X]
    got = _evaluate(client, model["id"], make_dataset(client, x=X, y=targets)["id"])
    outputs = np.asarray(_predict(client, model["id"], X)["outputs"], dtype=np.float64)
    errors = outputs - np.asarray(targets)
    assert got["task"] == "regression" and got["n_samples"] == 60
    assert math.isclose(got["mse"], float(np.mean(errors**2)), rel_tol=1e-5)
    assert math.isclose(got["mae"], float(np.mean(np.abs(errors))), rel_tol=1e-5)
    assert [t["target"] for t in got["per_target"]] == [0, 1]
    assert len(got["points"]["actual"]) == len(got["points"]["predicted"]) == 60
    assert "classes" not in got and "roc_auc" not in got


def test_unseen_labels_and_a_wrong_width_are_422(client: ApiClient) -> None:
    model = _binary_model(client)
    dataset = make_dataset(client, x=X[:6], y=["no", "yes", "maybe", "no", "never", "yes"])
    response = client.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert response.status_code == 422
    item = response.json()["detail"][0]
    assert item["loc"] == ["body", "dataset_id"]
    assert "'maybe'" in item["msg"] and "'never'" in item["msg"]

    wide = make_dataset(client, x=[[0, 1, 2]] * 4, y=["no", "yes", "no", "yes"])
    response = client.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": wide["id"]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "dataset_id"]
    assert "3 features" in response.json()["detail"][0]["msg"]

    numbers = make_dataset(client, x=X[:4], y=[1.5, 2.5, 3.5, 4.5])
    response = client.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": numbers["id"]})
    assert response.status_code == 422


def test_foreign_and_missing_datasets_are_404(client: ApiClient, bob: ApiClient) -> None:
    model = _binary_model(client)
    theirs = make_dataset(bob, y=["no", "yes", "yes", "no"])
    for dataset_id in (theirs["id"], "ds_0000000000000000"):
        response = client.post(
            f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset_id}
        )
        assert response.status_code == 404
        assert response.json()["detail"][0]["loc"] == ["body", "dataset_id"]
    assert bob.get(f"/v1/models/{model['id']}/evaluations").status_code == 404


@pytest.mark.parametrize("gone", ["model", "dataset"])
def test_a_model_or_dataset_deleted_while_scoring_is_404(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch, gone: str
) -> None:
    """Deleted between loading and storing the result (a halving trial's next rung
    replaces its rung model): 404 at its loc, not a foreign key's 500, nothing stored."""
    model = _binary_model(client)
    dataset = make_dataset(client, y=["no", "yes", "yes", "no"])
    table, row_id, loc = (
        (ModelRow, model["id"], ["path", "model_id"])
        if gone == "model"
        else (Dataset, dataset["id"], ["body", "dataset_id"])
    )

    def deleting_first(*args: Any) -> Any:
        with db.session() as session:
            session.execute(delete(table).where(table.id == row_id))
        return forward_in_blocks(*args)

    monkeypatch.setattr(evaluations, "forward_in_blocks", deleting_first)
    response = client.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert response.status_code == 404, response.text
    assert response.json()["detail"][0]["loc"] == loc
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Evaluation)) == 0


def test_evaluations_are_kept_listed_and_on_the_card(client: ApiClient, db: Database) -> None:
    model = _binary_model(client)
    first = make_dataset(client, x=X, y=["yes" if a > 0 else "no" for a, _ in X])
    second = make_dataset(client, x=X[:10], y=["no", "yes"] * 5)
    one = _evaluate(client, model["id"], first["id"])
    two = _evaluate(client, model["id"], second["id"])

    listed = client.get(f"/v1/models/{model['id']}/evaluations").json()
    assert listed["total"] == 2
    assert listed["items"] == [two, one]  # newest first, every field as evaluate answered
    card = client.get(f"/v1/models/{model['id']}").json()["card"]
    assert [e["evaluation_id"] for e in card["evaluations"]] == [one["id"], two["id"]]
    assert card["evaluations"][0]["dataset_id"] == first["id"]
    assert card["evaluations"][0]["n_samples"] == 60
    assert card["evaluations"][1]["scores"] == {
        "accuracy": two["accuracy"],
        "log_loss": two["log_loss"],
        "roc_auc": two["roc_auc"],
        "macro_f1": two["macro"]["f1"],
    }
    markdown = client.get(f"/v1/models/{model['id']}/card").text
    assert f"| `{one['id']}` | `{first['id']}` | 60 |" in markdown

    assert client.delete(f"/v1/datasets/{second['id']}").status_code == 204
    listed = client.get(f"/v1/models/{model['id']}/evaluations").json()
    assert listed["items"][0]["dataset_id"] is None  # kept, the dataset gone
    assert client.delete(f"/v1/models/{model['id']}").status_code == 204
    with db.read_session() as session:
        assert session.query(Evaluation).count() == 0


def test_the_forward_pass_in_blocks_equals_one_pass() -> None:
    network = {
        "input_size": 3,
        "layers": [{"units": 4, "activation": "relu"}, {"units": 2, "activation": "softmax"}],
        "loss": "categorical_crossentropy",
        "seed": 3,
    }
    model = EngineModel(Network.from_config(network), "multiclass", ["a", "b"])
    x = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    np.testing.assert_array_equal(forward_in_blocks(model, x, block_rows=3), model.predict(x))


def test_a_large_dataset_is_evaluated_by_a_worker_with_the_same_scores(
    make_client: Any, keys: Any, db: Database
) -> None:
    from tests.api.test_predictions import work

    now = make_client(keys.alice)
    queued = make_client(keys.alice, sync_evaluation_rows=10)
    model = _binary_model(now)
    rows = np.random.default_rng(3).normal(0, 1, (5000, 2)).round(3).tolist()  # 2 chunks
    y = ["yes" if a * b > 0 else "no" for a, b in rows]
    dataset = make_dataset(now, x=rows, y=y)
    sync = _evaluate(now, model["id"], dataset["id"])

    response = queued.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "queued" and pending["rows_total"] == 5000
    assert "accuracy" not in pending
    assert queued.get(f"/v1/evaluations/{pending['id']}").json()["status"] == "queued"
    work(db)
    done = queued.get(f"/v1/evaluations/{pending['id']}").json()
    assert done["status"] == "succeeded" and sync["status"] == "succeeded"
    ignore = {"id", "created_at"}
    assert {k: v for k, v in done.items() if k not in ignore} == {
        k: v for k, v in sync.items() if k not in ignore
    }
    listed = now.get(f"/v1/models/{model['id']}/evaluations").json()["items"]
    assert [item["id"] for item in listed] == [pending["id"], sync["id"]]
    assert now.get("/v1/jobs").json()["total"] == 0  # its job is not a training job


def test_a_queued_evaluation_checks_labels_up_front_and_is_owned(
    make_client: Any, keys: Any
) -> None:
    queued = make_client(keys.alice, sync_evaluation_rows=10)
    model = _binary_model(queued)
    dataset = make_dataset(queued, x=X, y=["maybe"] * len(X))
    response = queued.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "dataset_id"]
    assert "'maybe'" in response.json()["detail"][0]["msg"]

    fine = make_dataset(queued, x=X, y=["no"] * len(X))
    pending = queued.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": fine["id"]})
    assert pending.status_code == 202
    bob = make_client(keys.bob)
    other = bob.get(f"/v1/evaluations/{pending.json()['id']}")
    assert other.status_code == 404 and other.json()["detail"][0]["loc"] == [
        "path",
        "evaluation_id",
    ]


def test_rows_of_class_probabilities_score_as_their_labels(client: ApiClient) -> None:
    """A multiclass dataset given as one-hot rows (a format training takes, classes in
    unit order) scores as the same labels given one per row."""
    net3 = make_network(
        client, layers=[{"units": 5, "activation": "tanh"}, {"units": 3, "activation": "softmax"}]
    )
    model = import_model(client, net3, _config("multiclass", [0, 1, 2]))
    codes = [i % 3 for i in range(len(X))]
    onehot = np.eye(3)[codes].tolist()
    as_labels = _evaluate(client, model["id"], make_dataset(client, x=X, y=codes)["id"])
    as_rows = _evaluate(client, model["id"], make_dataset(client, x=X, y=onehot)["id"])
    ignore = {"id", "dataset_id", "created_at"}
    assert {k: v for k, v in as_rows.items() if k not in ignore} == {
        k: v for k, v in as_labels.items() if k not in ignore
    }
    bad = make_dataset(client, x=X[:4], y=[[0.5, 0.2, 0.1]] * 4)  # rows not summing to 1
    response = client.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": bad["id"]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "dataset_id"]
    assert "class probabilities" in response.json()["detail"][0]["msg"]


def _regression_model(client: ApiClient) -> dict[str, Any]:
    net = make_network(
        client,
        layers=[{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "linear"}],
        loss="mse",
    )
    return import_model(client, net, _config("regression", None))


def test_regression_scores_that_overflow_are_refused_not_null(
    make_client: Any, keys: Any, db: Database
) -> None:
    """Targets whose errors' squares pass float64's range have no mse to give: a 422 in
    the request, a failed evaluation (once, with the reason) in a worker; never a null."""
    from tests.api.test_predictions import work

    now = make_client(keys.alice)
    model = _regression_model(now)
    y = [[1e200, -1e200], [1, 2], [3, 4], [5, 6]]
    dataset = make_dataset(now, x=X[:4], y=y)
    response = now.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "dataset_id"] and error["type"] == "scores_overflow"
    assert "target(s) 0, 1" in error["msg"] and "rescale" in error["msg"]

    assert now.get(f"/v1/models/{model['id']}/evaluations").json()["total"] == 0

    queued = make_client(keys.alice, sync_evaluation_rows=2)
    pending = queued.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert pending.status_code == 202, pending.text
    work(db)
    done = queued.get(f"/v1/evaluations/{pending.json()['id']}").json()
    assert done["status"] == "failed", done
    assert "too large to score" in done["error"]


def test_a_queued_evaluation_can_be_cancelled_then_deleted(
    make_client: Any, keys: Any, db: Database
) -> None:
    """A worker's evaluation is cancelled and deleted like a prediction run; while it is
    queued, deleting its model names it and the request that cancels it."""
    from tests.api.test_predictions import work

    queued = make_client(keys.alice, sync_evaluation_rows=10)
    model = _binary_model(queued)
    dataset = make_dataset(queued, x=X, y=["no", "yes"] * (len(X) // 2))
    pending = queued.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert pending.status_code == 202, pending.text
    ev = pending.json()["id"]

    blocked = queued.delete(f"/v1/models/{model['id']}")
    assert blocked.status_code == 409, blocked.text
    assert f"evaluation {ev} is queued" in blocked.json()["detail"][0]["msg"]
    assert f"POST /v1/evaluations/{ev}/cancel" in blocked.json()["detail"][0]["msg"]
    active = queued.delete(f"/v1/evaluations/{ev}")
    assert active.status_code == 409 and active.json()["detail"][0]["type"] == "job_active"
    assert make_client(keys.bob).post(f"/v1/evaluations/{ev}/cancel").status_code == 404

    cancelled = queued.post(f"/v1/evaluations/{ev}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["id"] == ev
    again = queued.post(f"/v1/evaluations/{ev}/cancel")
    assert again.status_code == 409 and again.json()["detail"][0]["type"] == "job_finished"
    work(db)  # nothing left to run
    assert queued.get(f"/v1/evaluations/{ev}").json()["status"] == "cancelled"

    with db.read_session() as session:
        job_id = session.scalar(select(Evaluation.job_id).where(Evaluation.id == ev))
    assert queued.delete(f"/v1/evaluations/{ev}").status_code == 204
    assert queued.get(f"/v1/evaluations/{ev}").status_code == 404
    with db.read_session() as session:  # its ended job went with it
        assert job_id is not None and session.get(Job, job_id) is None
    assert queued.get(f"/v1/models/{model['id']}/evaluations").json()["total"] == 0

    now = make_client(keys.alice)  # scored in its request: already finished
    done = _evaluate(now, model["id"], dataset["id"])
    refused = now.post(f"/v1/evaluations/{done['id']}/cancel")
    assert refused.status_code == 409 and refused.json()["detail"][0]["type"] == "job_finished"
    assert now.delete(f"/v1/evaluations/{done['id']}").status_code == 204
    assert now.delete(f"/v1/models/{model['id']}").status_code == 204


LEASE_SECONDS = 0.3  # a worker learns of a cancel at its lease's renewals (every 0.1 s)


def test_a_running_evaluation_stops_within_a_chunk_when_cancelled(
    make_client: Any, keys: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while a worker scores it (the request lands as its second chunk of
    BLOCK_ROWS rows is scored): it ends cancelled at the next chunk, with no scores."""
    from app.jobs import batch_attempt

    queued = make_client(keys.alice, sync_evaluation_rows=10)
    model = _binary_model(queued)
    rows = np.random.default_rng(5).normal(0, 1, (5 * BLOCK_ROWS, 2)).round(3).tolist()
    dataset = make_dataset(queued, x=rows, y=["yes" if a > 0 else "no" for a, _ in rows])
    pending = queued.post(f"/v1/models/{model['id']}/evaluate", json={"dataset_id": dataset["id"]})
    assert pending.status_code == 202, pending.text
    ev = pending.json()["id"]
    chunks: list[int] = []
    answers: list[Any] = []
    score = batch_attempt.scoring.forward_in_blocks

    def scored_then_cancelled(*args: Any, **kwargs: Any) -> Any:
        chunks.append(1)
        if len(chunks) == 2:  # the client's cancel arrives while the worker runs
            answers.append(queued.post(f"/v1/evaluations/{ev}/cancel"))
            time.sleep(3 * LEASE_SECONDS)  # the lease's renewals (every third) bring it
        return score(*args, **kwargs)

    monkeypatch.setattr(batch_attempt.scoring, "forward_in_blocks", scored_then_cancelled)
    settings = Settings(
        database_url=db.url, poll_seconds=0.05, prediction_chunk_rows=1, lease_seconds=LEASE_SECONDS
    )
    Worker(db, settings, "w").run(burst=True)  # chunks of one block each
    (answer,) = answers
    assert answer.status_code == 202 and answer.json()["status"] == "running", answer.text
    done = queued.get(f"/v1/evaluations/{ev}").json()
    assert done["status"] == "cancelled", done
    assert done["rows_done"] == 2 * BLOCK_ROWS and "accuracy" not in done, done
    assert len(chunks) == 2  # not one chunk more
