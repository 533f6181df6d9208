"""GET /v1/models/{id}/export?format=onnx: a valid ONNX model that onnxruntime runs to
predict's outputs (within 1e-5 relative to max(1, |largest output|)) and labels."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest

from app.engine.activations import ACTIVATIONS
from app.services.export_onnx import ONNX_ACTIVATIONS, OPSET
from app.services.export_source import backprop_version
from app.storage.database import Database
from tests.api.client import ApiClient
from tests.api.conftest import make_network, train
from tests.api.export_models import (
    COMBINATIONS,
    HEADS,
    HIDDEN,
    Head,
    assert_close,
    import_head,
    import_random_model,
    named_dataset,
    predicted,
    random_rows,
    stored_binary_model,
)

RELATIVE = 1e-5


def export_onnx(client: ApiClient, model_id: str) -> onnx.ModelProto:
    response = client.get(f"/v1/models/{model_id}/export", params={"format": "onnx"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="{model_id}.onnx"'
    proto = onnx.load_model_from_string(response.content)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def run(proto: onnx.ModelProto, x: np.ndarray) -> dict[str, Any]:
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"x": x}), strict=True))


def check_against_predict(client: ApiClient, model: dict[str, Any], x: np.ndarray) -> None:
    """onnxruntime's outputs and labels for x against predict's; with many rows, the rows
    must reach more than one class (a constant label would prove little)."""
    proto = export_onnx(client, model["id"])
    answer = run(proto, x)
    expected = predicted(client, model["id"], x)
    assert_close(answer["outputs"], expected["outputs"], RELATIVE)
    if model["classes"] is None:
        assert set(answer) == {"outputs"}
    else:
        assert answer["labels"].tolist() == expected["labels"]
        assert x.shape[0] < 50 or len(set(expected["labels"])) > 1


def test_every_activation_has_nodes_and_the_tests_use_all() -> None:
    assert set(ONNX_ACTIVATIONS) == set(ACTIVATIONS)
    used = {layer["activation"] for layer in HIDDEN} | {head.activation for head in HEADS}
    assert used == set(ACTIVATIONS)


@pytest.mark.parametrize(("head", "standardize"), COMBINATIONS)
def test_onnxruntime_answers_what_predict_answers(
    client: ApiClient, head: Head, standardize: bool
) -> None:
    model = import_head(client, head, standardize)
    x = random_rows(300)
    check_against_predict(client, model, x)
    # The batch dimension is dynamic: one row, and rows not seen before.
    check_against_predict(client, model, random_rows(1, seed=7))


def test_the_graph_is_described(client: ApiClient) -> None:
    head = HEADS[1]
    model = import_head(client, head, standardize=True)
    proto = export_onnx(client, model["id"])
    assert [opset.version for opset in proto.opset_import if opset.domain == ""] == [OPSET]
    (x,) = proto.graph.input
    dims = x.type.tensor_type.shape.dim
    assert x.name == "x" and x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims[0].dim_param == "N" and dims[1].dim_value == 3
    assert [o.name for o in proto.graph.output] == ["outputs", "labels"]
    labels = proto.graph.output[1].type.tensor_type
    assert labels.elem_type == onnx.TensorProto.STRING
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == {
        "model_id": model["id"],
        "task": "multiclass",
        "classes": json.dumps(head.classes),
        "feature_names": json.dumps(["x1", "x2", "x3"]),
        "backprop_version": backprop_version(),
    }
    ops = [node.op_type for node in proto.graph.node]
    assert ops[:2] == ["Sub", "Div"]  # the standardisation is part of the graph
    assert ops.count("Gemm") == len(HIDDEN) + 1


@pytest.mark.parametrize(
    ("classes", "elem_type"),
    [
        ([0, 1], onnx.TensorProto.INT64),
        ([False, True], onnx.TensorProto.BOOL),
        ([0.5, 2.0], onnx.TensorProto.DOUBLE),
        (["a", "b"], onnx.TensorProto.STRING),
    ],
)
def test_binary_labels_keep_their_type(
    client: ApiClient, classes: list[Any], elem_type: int
) -> None:
    layers = [{"units": 5, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
    model = import_random_model(
        client,
        layers,
        loss="binary_crossentropy",
        task="binary",
        classes=classes,
        standardize=False,
    )
    proto = export_onnx(client, model["id"])
    assert proto.graph.output[1].type.tensor_type.elem_type == elem_type
    check_against_predict(client, model, random_rows(100))


def test_integer_and_float_labels_of_a_model_stored_before_the_rule_export_as_doubles(
    client: ApiClient, db: Database
) -> None:
    """Classes mixing integers and floats: an import refuses them now, but a model stored
    before that rule still loads, and ONNX holds its labels as doubles."""
    model = stored_binary_model(client, db, [1, 2.5])
    assert model["classes"] == [1, 2.5]
    proto = export_onnx(client, model["id"])
    assert proto.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    check_against_predict(client, model, random_rows(100))


def test_integer_multiclass_and_a_float64_model(client: ApiClient) -> None:
    layers = [{"units": 6, "activation": "relu"}, {"units": 4, "activation": "softmax"}]
    model = import_random_model(
        client,
        layers,
        loss="categorical_crossentropy",
        task="multiclass",
        classes=[3, 7, 11, 20],
        standardize=True,
        dtype=np.float64,
    )
    proto = export_onnx(client, model["id"])
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    check_against_predict(client, model, random_rows(200))


def test_a_trained_model_with_named_features(client: ApiClient, db: Database) -> None:
    dataset = named_dataset(client)
    job = train(client, db, make_network(client), dataset, epochs=30)
    proto = export_onnx(client, job["model_id"])
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["feature_names"]) == ["width", "depth"]
    assert json.loads(props["classes"]) == ["in", "out"]
    x = np.asarray(client.get(f"/v1/datasets/{dataset['id']}/data").json()["x"], np.float32)
    check_against_predict(client, client.get(f"/v1/models/{job['model_id']}").json(), x)


def test_classes_no_onnx_tensor_holds_are_refused_clearly(client: ApiClient, db: Database) -> None:
    """Classes mixing booleans and numbers: an import refuses them now, but a model stored
    before that rule still loads, and ONNX (one tensor type) refuses it clearly."""
    model = stored_binary_model(client, db, [False, 1])
    assert model["classes"] == [False, 1]
    response = client.get(f"/v1/models/{model['id']}/export?format=onnx")
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "format"] and error["type"] == "not_exportable"
    assert "booleans" in error["msg"]
    # The other formats take it.
    for fmt in ("python", "npz"):
        assert client.get(f"/v1/models/{model['id']}/export?format={fmt}").status_code == 200


def test_an_unknown_format_is_refused_and_npz_is_the_weights_download(
    client: ApiClient,
) -> None:
    model = import_head(client, HEADS[0], standardize=True)
    response = client.get(f"/v1/models/{model['id']}/export?format=pickle")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "format"]
    weights = client.get(f"/v1/models/{model['id']}/weights")
    for url in (f"/v1/models/{model['id']}/export?format=npz", f"/v1/models/{model['id']}/export"):
        exported = client.get(url)
        assert exported.status_code == 200
        assert exported.content == weights.content
        assert exported.headers["content-disposition"].endswith(f'filename="{model["id"]}.npz"')
    arrays = np.load(io.BytesIO(weights.content), allow_pickle=False)
    assert {"x_mean", "x_std", "W1", "b1"} <= set(arrays.files)


def test_the_api_imports_onnx_only_when_asked_for_an_export() -> None:
    """Importing onnx costs about 1.5 s of CPU: an API process that starts pays none."""
    probe = "import sys, app.main; print(sorted({'onnx', 'ml_dtypes'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
