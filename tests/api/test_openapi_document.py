"""The OpenAPI document as client generators need it (app.api.openapi): short operation
ids, named bodies, binary files, event schemas, typed and constrained fields."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from app.api import openapi as api_document
from app.api.schemas.common import ERROR_TYPES
from app.config import Settings
from app.main import create_app
from tests.api.openapi_ops import operations

APP = Path(__file__).resolve().parents[2] / "app"
REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(database_url="sqlite://"))


@pytest.fixture(scope="module")
def doc(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


def test_operation_ids_are_the_route_function_names(app: FastAPI) -> None:
    ids = {(op.method, op.path): str(op.spec["operationId"]) for op in operations(app)}
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", op_id) for op_id in ids.values()), ids
    assert {
        ("post", "/v1/datasets"): "create_dataset",
        ("post", "/v1/datasets/upload"): "upload_dataset",
        ("post", "/v1/networks"): "create_network",
        ("post", "/v1/jobs"): "submit_job",
        ("get", "/v1/jobs/{job_id}/events"): "stream_job_events",
        ("post", "/v1/models/{model_id}/predict"): "predict",
        ("post", "/v1/models/{model_id}/predict.npy"): "predict_npy",
        ("post", "/v1/models/import"): "import_model",
        ("get", "/v1/models/{model_id}/export"): "export_model",
        ("get", "/v1/models/{model_id}/weights"): "get_model_weights",
        ("get", "/healthz"): "healthz",
    }.items() <= ids.items()


def test_a_duplicate_operation_id_is_refused() -> None:
    app = FastAPI(generate_unique_id_function=api_document.operation_id)
    app.get("/a", name="same")(lambda: None)
    app.get("/b", name="same")(lambda: None)
    api_document.install(app, extra_models=[])
    with (
        pytest.warns(UserWarning, match="Duplicate Operation ID"),  # FastAPI's own
        pytest.raises(ValueError, match="'same' is not unique"),
    ):
        app.openapi()


def test_every_body_is_a_named_component(app: FastAPI, doc: dict[str, Any]) -> None:
    names = doc["components"]["schemas"]
    for op in operations(app):
        bodies = [op.spec.get("requestBody", {})]
        bodies += [r for r in op.spec["responses"].values()]
        for body in bodies:
            for media_type, media in body.get("content", {}).items():
                schema = media["schema"]
                if media_type in ("application/json", "multipart/form-data"):
                    # A named schema, null (cancel's optional body) or a union of named ones.
                    arms = schema.get("anyOf") or schema.get("oneOf") or [schema]
                    refs = [s for s in arms if s != {"type": "null"}]
                    assert refs and all(set(ref) == {"$ref"} for ref in refs), (str(op), schema)
                    assert all(ref["$ref"].removeprefix(REF) in names for ref in refs)
    assert not [name for name in names if name.startswith(("Body_", "Page_"))]
    listing = op_spec(doc, "get", "/v1/datasets")["responses"]["200"]["content"]
    assert listing["application/json"]["schema"] == {"$ref": REF + "DatasetReadPage"}
    upload = op_spec(doc, "post", "/v1/datasets/upload")["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"] == {"$ref": REF + "UploadDatasetForm"}
    imported = op_spec(doc, "post", "/v1/models/import")["requestBody"]["content"]
    assert imported["multipart/form-data"]["schema"] == {"$ref": REF + "ImportModelForm"}
    predict = op_spec(doc, "post", "/v1/models/{model_id}/predict")["requestBody"]["content"]
    assert predict["application/json"]["schema"] == {"$ref": REF + "PredictRequest"}


def op_spec(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    spec: dict[str, Any] = doc["paths"][path][method]
    return spec


def test_files_are_binary_strings(doc: dict[str, Any]) -> None:
    octets = "application/octet-stream"
    assert not [n for n in _nodes(doc) if n.get("contentMediaType") == octets]
    for form in ("UploadDatasetForm", "ImportModelForm"):
        file = _schema(doc, form)["properties"]["file"]
        kinds = [(k["type"], k.get("format")) for k in file.get("anyOf", [file])]
        assert ("string", "binary") in kinds, (form, file)
    weights = op_spec(doc, "get", "/v1/models/{model_id}/weights")["responses"]["200"]
    assert weights["content"]["application/octet-stream"]["schema"]["format"] == "binary"


def test_events_are_text_with_named_event_schemas(doc: dict[str, Any]) -> None:
    ok = op_spec(doc, "get", "/v1/jobs/{job_id}/events")["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    options = ok["content"]["text/event-stream"]["schema"]["anyOf"]
    assert options[0]["type"] == "string"
    events = ["EpochEvent", "FindingsEvent", "EndEvent"]
    assert [o["$ref"] for o in options[1:]] == [REF + event for event in events]
    data_schemas = ("HistoryEntry", "JobFindings", "JobEnd")
    for event, data in zip(events, data_schemas, strict=True):
        field = _schema(doc, event)["properties"]["data"]
        assert field["contentSchema"] == {"$ref": REF + data}
        assert data in doc["components"]["schemas"]


@pytest.mark.parametrize(
    "model",
    [
        "ActivationName",
        "LossName",
        "InitName",
        "OptimizerName",
        "ScheduleName",
        "DatasetKind",
        "JobStatus",
        "LabelKind",
        "ModelTask",
    ],
)
def test_names_from_a_fixed_set_are_enum_components(doc: dict[str, Any], model: str) -> None:
    assert _schema(doc, model)["enum"]


def test_no_free_form_objects(doc: dict[str, Any]) -> None:
    """Each object declares its properties or the type of its values (extra keys may
    pass, never alone)."""
    for name, schema in doc["components"]["schemas"].items():
        for node in _nodes(schema):
            if node.get("type") == "object" or "additionalProperties" in node:
                typed_values = isinstance(node.get("additionalProperties"), dict)
                assert node.get("properties") or typed_values, (name, node)
    job = _schema(doc, "JobRead")["properties"]
    assert job["history"]["items"] == {"$ref": REF + "HistoryEntry"}
    assert job["options"]["$ref"] == REF + "JobOptions"
    model = _schema(doc, "ModelRead")["properties"]
    assert model["architecture"]["$ref"] == REF + "NetworkConfig"
    assert model["config"]["$ref"] == REF + "ModelConfig"


def test_defaults_are_optional_in_requests_and_required_in_responses(
    doc: dict[str, Any],
) -> None:
    request, response = _schema(doc, "JobCreate"), _schema(doc, "JobOptions")
    assert set(request["required"]) == {"network_id", "dataset_id"}
    options = set(response["properties"])
    assert {"epochs", "batch_size", "seed", "optimizer"} <= options == set(response["required"])
    assert set(_schema(doc, "Optimizer")["required"]) == set(
        _schema(doc, "OptimizerIn")["properties"]
    )
    assert "required" not in _schema(doc, "OptimizerIn")


def test_arrays_have_item_counts_not_string_lengths(doc: dict[str, Any]) -> None:
    for node in _nodes(doc["components"]["schemas"]):
        if "minLength" in node or "maxLength" in node:
            assert node.get("type") == "string", node
    y = _schema(doc, "DatasetCreate")["properties"]["y"]
    assert [arm["minItems"] for arm in y["anyOf"]] == [1, 1]


def test_open_routes_servers_and_retry_after(app: FastAPI, doc: dict[str, Any]) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert op_spec(doc, "get", path)["security"] == []
    assert doc["servers"] == [{"url": "/"}]
    public = create_app(Settings(database_url="sqlite://", public_url="https://ml.example.com"))
    assert public.openapi()["servers"] == [{"url": "https://ml.example.com"}]
    too_many = [op for op in operations(app) if "429" in op.spec["responses"]]
    assert too_many
    for op in too_many:
        assert "Retry-After" in op.spec["responses"]["429"]["headers"], str(op)


def test_every_error_type_the_code_writes_is_documented(doc: dict[str, Any]) -> None:
    # error_type="..." of a ServiceError, "type": "..." after a "msg" in a detail dict, or
    # the code of a validator's PydanticCustomError
    pattern = re.compile(
        r'error_type\s*=\s*"([a-z_]+)"|"msg":[^{}]*?"type":\s*"([a-z_]+)"'
        r'|PydanticCustomError\(\s*"([a-z_]+)"'
    )
    written = {
        code
        for path in APP.rglob("*.py")
        for codes in pattern.findall(path.read_text(encoding="utf-8"))
        for code in codes
        if code
    }
    written -= {"missing"}  # pydantic's own code, reused for a missing predict body
    assert written, "no error type found: the pattern is stale"
    assert written <= set(ERROR_TYPES), written - set(ERROR_TYPES)
    description = _schema(doc, "ErrorItem")["properties"]["type"]["description"]
    assert all(f"`{code}`" in description for code in ERROR_TYPES)


class _Unused(BaseModel):
    x: int


def test_extra_models_are_added_by_name() -> None:
    app = FastAPI(generate_unique_id_function=api_document.operation_id)
    api_document.install(app, extra_models=[_Unused])
    assert app.openapi()["components"]["schemas"]["_Unused"]["required"] == ["x"]
