"""A client generated from the live OpenAPI document works: the XOR flow through it.

``openapi-python-client`` writes a client package from /openapi.json (it must print no
warning: a warning means a dropped operation or a body it cannot send); the test imports
it and drives the whole flow with the generated models and calls, against the ASGI app
(the generated client's httpx client gets a transport into the test's ApiClient). The
events call returns the stream as text (the stream's schema is a string to generators);
each event's data is read with the generated HistoryEntry and JobEnd models.
"""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest

from app.config import Settings
from app.main import create_app
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import Keys, MakeClient, auth, run_worker

pytestmark = pytest.mark.slow  # the generator takes several seconds

PACKAGE = "backprop_generated"
CONFIG = f"project_name_override: backprop-generated\npackage_name_override: {PACKAGE}\n"
XOR_CSV = b"a,b,label\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"
XOR_ROWS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
EPOCHS = 150


class AppTransport(httpx.BaseTransport):
    """Sends the generated client's requests through the test's ApiClient (the ASGI app)."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.api.request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )


def generate(document: dict[str, Any], where: Path) -> str:
    """Generate the client package into ``where``; the generator's output."""
    (where / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    # No post hooks: the generated code is not formatted (ruff), only imported.
    (where / "config.yaml").write_text(CONFIG + "post_hooks: []\n", encoding="utf-8")
    command = ["generate", "--path", "openapi.json", "--output-path", "client"]
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", *command, "--config", "config.yaml"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """/openapi.json as a server sends it (the document does not depend on the database)."""
    with ApiClient(create_app(Settings(database_url="sqlite://"))) as api:
        served: dict[str, Any] = api.get("/openapi.json").json()
    return served


@pytest.fixture(scope="module")
def generated(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The package generated from ``document``, imported (and forgotten afterwards);
    generated once for the module (the generator takes seconds)."""
    where = tmp_path_factory.mktemp("generated")
    output = generate(document, where)
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(where / "client"))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where / "client"))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data as JSON) of each event of a text/event-stream body."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def npy(rows: list[list[float]]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array(rows))
    return buffer.getvalue()


def test_the_xor_flow_through_a_generated_client(
    document: dict[str, Any],
    generated: ModuleType,
    make_client: MakeClient,
    keys: Keys,
    db: Database,
) -> None:
    models, types, api = _module("models"), _module("types"), make_client(keys.alice)
    assert api.get("/openapi.json").json() == document  # the client is this server's
    client = generated.AuthenticatedClient(base_url="http://testserver", token=keys.alice)
    client.set_httpx_client(
        httpx.Client(
            base_url="http://testserver", transport=AppTransport(api), headers=auth(keys.alice)
        )
    )

    upload = _module("api.datasets.upload_dataset")
    form = models.UploadDatasetForm(
        file=types.File(payload=io.BytesIO(XOR_CSV), file_name="xor.csv", mime_type="text/csv"),
        name="xor",
        target="label",
    )
    dataset = upload.sync(client=client, body=form)
    assert isinstance(dataset, models.DatasetRead), dataset
    assert (dataset.n_samples, dataset.n_features) == (4, 2)
    assert dataset.label_kind == models.LabelKind("categorical")

    network = _module("api.networks.create_network").sync(
        client=client,
        body=models.NetworkCreate(
            name="xor-net",
            input_size=2,
            layers=[
                models.LayerSpec(units=8, activation=models.ActivationName("tanh")),
                models.LayerSpec(units=1, activation=models.ActivationName("sigmoid")),
            ],
            seed=0,
        ),
    )
    assert isinstance(network, models.NetworkRead), network

    job = _module("api.jobs.submit_job").sync(
        client=client,
        body=models.JobCreate(
            network_id=network.id,
            dataset_id=dataset.id,
            epochs=EPOCHS,
            batch_size=4,
            validation_split=0.0,
            optimizer=models.OptimizerIn(name=models.OptimizerName("adam"), learning_rate=0.05),
        ),
    )
    assert isinstance(job, models.JobRead), job
    assert job.options.epochs == EPOCHS and job.options.optimizer.learning_rate == 0.05
    run_worker(db)

    stream = _module("api.jobs.stream_job_events").sync(job.id, client=client)
    assert isinstance(stream, str), stream
    events = sse_events(stream)
    epochs = [models.HistoryEntry.from_dict(data) for event, data in events if event == "epoch"]
    assert [m.epoch for m in epochs] == list(range(1, EPOCHS + 1))
    assert events[-1][0] == "end"
    end = models.JobEnd.from_dict(events[-1][1])
    assert end.status == models.JobStatus("succeeded") and isinstance(end.model_id, str)
    assert epochs[-1].accuracy == 1.0

    done = _module("api.jobs.get_job").sync(job.id, client=client)
    assert isinstance(done, models.JobRead), done
    assert [(m.epoch, m.loss) for m in done.history] == [(m.epoch, m.loss) for m in epochs]

    predict = _module("api.models.predict")
    answer = predict.sync(end.model_id, client=client, body=models.PredictRequest(x=XOR_ROWS))
    assert isinstance(answer, models.PredictResponse), answer
    assert answer.labels == [0, 1, 1, 0]
    as_npy = _module("api.models.predict_npy").sync(
        end.model_id, client=client, body=types.File(payload=io.BytesIO(npy(XOR_ROWS)))
    )
    assert isinstance(as_npy, models.PredictResponse), as_npy
    assert as_npy.to_dict() == answer.to_dict()

    model = _module("api.models.get_model").sync(end.model_id, client=client)
    assert isinstance(model, models.ModelDetail), model
    weights = _module("api.models.get_model_weights").sync(end.model_id, client=client)
    assert isinstance(weights, types.File), weights
    imported = _module("api.models.import_model").sync(
        client=client,
        body=models.ImportModelForm(
            network_id=network.id,
            file=types.File(payload=weights.payload, file_name="xor.npz"),
            config=json.dumps(model.config.to_dict()),
        ),
    )
    assert isinstance(imported, models.ModelRead), imported
    assert imported.config.to_dict() == model.config.to_dict()
    again = predict.sync(imported.id, client=client, body=models.PredictRequest(x=XOR_ROWS))
    assert isinstance(again, models.PredictResponse), again
    assert again.to_dict() == answer.to_dict()
