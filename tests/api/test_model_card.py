"""The model card (GET /v1/models/{id} ``card``, GET /v1/models/{id}/card as Markdown):
each fact checked against the database row it comes from."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from importlib import metadata
from typing import Any

import pytest

from app.config import get_settings
from app.engine.options import TrainingOptions
from app.services import model_card
from app.services.datasets import load_dataset_arrays
from app.storage.blobs import open_blob_store
from app.storage.database import Database
from app.storage.tables import Dataset, Job, Model
from tests.api.client import ApiClient
from tests.api.conftest import import_model, make_network, train
from tests.api.export_models import named_dataset


def _rows(db: Database, model_id: str) -> tuple[Model, Job, Dataset]:
    with db.read_session() as session:
        model = session.get(Model, model_id)
        assert model is not None and model.job_id is not None
        job = session.get(Job, model.job_id)
        assert job is not None and job.dataset_id is not None
        dataset = session.get(Dataset, job.dataset_id)
        assert dataset is not None
        return model, job, dataset


def _flat_names(options: dict[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key, value in options.items():
        if isinstance(value, dict):
            names += _flat_names(value, f"{prefix}{key}.")
        else:
            names.append(f"{prefix}{key}")
    return names


def test_the_card_holds_the_facts_of_its_rows(client: ApiClient, db: Database) -> None:
    dataset = named_dataset(client, rows=80)
    network = make_network(client)
    first = train(client, db, network, dataset, epochs=5)
    options = {
        "epochs": 40,
        "validation_split": 0.25,
        "early_stopping": {"patience": 4},
        "optimizer": {"name": "momentum", "learning_rate": 0.05},
    }
    job = train(client, db, network, dataset, init_model_id=first["model_id"], **options)
    body = client.get(f"/v1/models/{job['model_id']}").json()
    card = body["card"]
    model, job_row, dataset_row = _rows(db, job["model_id"])

    assert card["architecture"] == model.config["network"] == body["architecture"]
    assert card["parameter_count"] == body["parameter_count"] == 2 * 8 + 8 + 8 + 1
    assert card["task"] == model.config["task"] == "binary"
    assert card["classes"] == model.config["classes"] == ["in", "out"]
    assert card["standardize"] is model.config["standardize"] is True

    data = card["training_data"]
    for name in ("name", "sha256", "n_samples", "n_features", "n_targets", "label_kind"):
        assert data[name] == getattr(dataset_row, name), name
    assert data["dataset_id"] == dataset_row.id == dataset["id"]
    assert data["feature_names"] == dataset_row.feature_names == ["width", "depth"]
    _, y = load_dataset_arrays(open_blob_store(get_settings()), dataset_row)
    counts = Counter(y.tolist())
    assert data["class_balance"] == [
        {"label": label, "count": counts[label], "fraction": counts[label] / len(y)}
        for label in sorted(counts)
    ]
    assert sum(item["count"] for item in data["class_balance"]) == dataset_row.n_samples

    assert card["training_options"] == job_row.options
    assert set(card["training_options"]) == set(TrainingOptions().to_dict())  # every option
    assert card["training_options"]["optimizer"]["name"] == "momentum"

    metrics = card["metrics"]
    # The history's numbers; the card leaves out each entry's per-layer statistics.
    history = [{k: v for k, v in entry.items() if k != "layers"} for entry in job_row.history]
    assert all("layers" in entry for entry in job_row.history)
    assert metrics["final"] == history[-1] == job_row.metrics
    assert metrics["best_by"] == "val_loss"
    assert metrics["best"] == min(history, key=lambda entry: entry["val_loss"])
    assert model.metrics is not None
    assert metrics["weights_epoch"] == model.metrics["epoch"] == metrics["best"]["epoch"]

    assert card["evaluations"] == []
    assert card["lineage"] == {
        "job_id": job_row.id,
        "initial_model_id": job_row.init_model_id,
        "sweep_id": None,
        "trial_index": None,
        "trained_here": True,
    }
    assert job_row.init_model_id == first["model_id"]
    assert card["backprop_version"] == metadata.version("backprop")
    assert datetime.fromisoformat(card["created_at"]) == model.created_at

    markdown = client.get(f"/v1/models/{job['model_id']}/card")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    text = markdown.text
    assert text.startswith(f"# Model card: {model.id}\n")
    for fact in (
        dataset_row.sha256,
        dataset_row.id,
        "shapes",
        f"{dataset_row.n_samples:,} rows x 2 features",
        f"Training job: `{job_row.id}`",
        f"Initial model: `{first['model_id']}`",
        f"{card['parameter_count']:,} parameters",
        f"Backprop {metadata.version('backprop')}",
        "Best (lowest val_loss)",
        f"weights of epoch {model.metrics['epoch']}",
        "| `tanh` |",
        "None yet.",
    ):
        assert fact in text, fact
    for name in _flat_names(job_row.options):
        assert f"| `{name}` |" in text, name
    for item in data["class_balance"]:
        assert f'| `"{item["label"]}"` | {item["count"]} |' in text


def test_an_imported_model_has_no_training_facts(client: ApiClient) -> None:
    model = import_model(client, make_network(client))
    card = client.get(f"/v1/models/{model['id']}").json()["card"]
    assert card["training_data"] is None and card["training_options"] is None
    assert card["lineage"] == {
        "job_id": None,
        "initial_model_id": None,
        "sweep_id": None,
        "trial_index": None,
        "trained_here": False,
    }
    assert card["metrics"] == {"final": None, "best": None, "best_by": None, "weights_epoch": None}
    text = client.get(f"/v1/models/{model['id']}/card").text
    assert "Not recorded: the model was imported." in text
    assert "Training job: none (imported)" in text


def test_a_deleted_dataset_is_said_so(client: ApiClient, db: Database) -> None:
    dataset = named_dataset(client)
    job = train(client, db, make_network(client), dataset, epochs=3)
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    card = client.get(f"/v1/models/{job['model_id']}").json()["card"]
    assert card["training_data"] is None
    assert card["training_options"]["epochs"] == 3
    assert "its dataset has been deleted" in client.get(f"/v1/models/{job['model_id']}/card").text


def test_the_class_balance_is_read_from_the_stored_counts(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = named_dataset(client, rows=50)
    job = train(client, db, make_network(client), dataset, epochs=1)
    _, _, dataset_row = _rows(db, job["model_id"])
    _, y = load_dataset_arrays(open_blob_store(get_settings()), dataset_row)
    counts = Counter(y.tolist())
    expected = [
        {"label": label, "count": counts[label], "fraction": counts[label] / len(y)}
        for label in sorted(counts)
    ]
    assert dataset_row.stats["class_counts"] == [counts[label] for label in sorted(counts)]
    assert dataset_row.classes == sorted(counts)

    def no_reading(*_args: Any) -> None:
        raise AssertionError("the card read y")

    with monkeypatch.context() as patch:
        patch.setattr(model_card, "load_array", no_reading)
        card = client.get(f"/v1/models/{job['model_id']}").json()["card"]
    assert card["training_data"]["class_balance"] == expected

    # A dataset stored before the counts were: its y is counted.
    with db.session() as session:
        row = session.get(Dataset, dataset_row.id)
        assert row is not None
        row.stats = {k: v for k, v in row.stats.items() if k != "class_counts"}
    card = client.get(f"/v1/models/{job['model_id']}").json()["card"]
    assert card["training_data"]["class_balance"] == expected
