"""The API when the blob store fails: 503 + Retry-After while it is unreachable (nothing
is stored), 409 naming the blob when stored data is missing or corrupt."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.main import create_app
from app.storage.blobs import open_blob_store
from app.storage.database import Database
from app.storage.tables import Dataset, Model
from tests.api.client import ApiClient
from tests.api.conftest import (
    Keys,
    MakeClient,
    auth,
    import_model,
    make_dataset,
    make_network,
)
from tests.blobhelpers import corrupt, unreachable_store


def test_writes_get_503_with_retry_after_while_the_store_is_down(
    db: Database, keys: Keys, tmp_path: Path
) -> None:
    app = create_app(Settings(database_url=db.url), db, unreachable_store(tmp_path / "cache"))
    with ApiClient(app) as client:
        client.headers.update(auth(keys.alice))
        response = client.post("/v1/datasets", json={"name": "d", "x": [[0], [1]], "y": [0, 1]})
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    (error,) = response.json()["detail"]
    assert error["loc"] == ["blob_store"] and error["type"] == "store_unavailable"
    assert "unreachable" in error["msg"]
    with db.read_session() as session:
        assert session.query(Dataset).count() == 0


def test_corrupt_or_missing_stored_data_is_a_409_naming_the_blob(
    db: Database, keys: Keys, make_client: MakeClient
) -> None:
    client = make_client(keys.alice)
    dataset = make_dataset(client)
    network = make_network(client)
    model = import_model(client, network)
    store = open_blob_store(Settings())
    with db.read_session() as session:
        x_sha = session.get(Dataset, dataset["id"]).x_sha256  # type: ignore[union-attr]
        weights_sha = session.get(Model, model["id"]).weights_sha256  # type: ignore[union-attr]

    corrupt(store, x_sha)
    response = client.get(f"/v1/datasets/{dataset['id']}/data")
    assert response.status_code == 409, response.text
    (error,) = response.json()["detail"]
    assert error["type"] == "blob_corrupt" and error["loc"] == ["blob", x_sha]
    assert x_sha in error["msg"]

    store.delete(weights_sha)
    for response in (
        client.get(f"/v1/models/{model['id']}/weights"),
        client.post(f"/v1/models/{model['id']}/predict", json={"x": [[0, 1]]}),
    ):
        assert response.status_code == 409, response.text
        (error,) = response.json()["detail"]
        assert error["type"] == "blob_missing" and weights_sha in error["msg"]
