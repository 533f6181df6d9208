"""A JSON body that cannot be read gets a 422 that says what to change, at ["body"]."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.api.body_errors import explain
from tests.api.client import ApiClient
from tests.api.conftest import XOR_NETWORK, make_dataset, make_network

NETWORK_JSON = json.dumps(XOR_NETWORK)


def _only_error(response: object) -> dict[str, object]:
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    (error,) = response.json()["detail"]  # type: ignore[attr-defined]
    return dict(error)


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({}, "has no Content-Type header"),
        # What `curl -d` sends when no header is given.
        (
            {"content-type": "application/x-www-form-urlencoded"},
            "says 'application/x-www-form-urlencoded'",
        ),
        ({"content-type": "text/plain; charset=utf-8"}, "says 'text/plain; charset=utf-8'"),
    ],
)
def test_a_json_route_names_the_content_type_to_send(
    client: ApiClient, headers: dict[str, str], said: str
) -> None:
    response = client.post("/v1/networks", content=NETWORK_JSON.encode(), headers=headers)
    assert _only_error(response) == {
        "loc": ["body"],
        "msg": "the body is read as JSON only with the header "
        f"'Content-Type: application/json'; this request {said}",
        "type": "content_type",
    }


def test_the_same_body_with_the_header_is_accepted(client: ApiClient) -> None:
    headers = {"content-type": "application/json"}
    response = client.post("/v1/networks", content=NETWORK_JSON.encode(), headers=headers)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("body", "position", "msg"),
    [
        (
            '{"name": "n",\n  "input_size": 2 "layers": []}',
            32,
            "Expecting ',' delimiter at line 2 column 19",
        ),
        (
            '{"name": "n",}',
            13,
            "Expecting property name enclosed in double quotes at line 1 column 14",
        ),
        ("{\n\n  \"name\": 'n'}", 13, "Expecting value at line 3 column 11"),
        ('{"name": "n"', 12, "Expecting ',' delimiter at line 1 column 13"),
    ],
)
def test_malformed_json_says_line_column_and_what_was_expected(
    client: ApiClient, body: str, position: int, msg: str
) -> None:
    headers = {"content-type": "application/json"}
    response = client.post("/v1/networks", content=body.encode(), headers=headers)
    assert _only_error(response) == {
        "loc": ["body", position],
        "msg": f"the body is not valid JSON: {msg}",
        "type": "json_invalid",
    }


def test_an_empty_body_and_a_body_that_is_no_object(client: ApiClient) -> None:
    headers = {"content-type": "application/json"}
    assert _only_error(client.post("/v1/networks", content=b"", headers=headers)) == {
        "loc": ["body"],
        "msg": "the body is empty: send a JSON object with 'Content-Type: application/json'",
        "type": "missing",
    }
    assert _only_error(client.post("/v1/networks", content=b"[1, 2]", headers=headers)) == {
        "loc": ["body"],
        "msg": "the body must be a JSON object {...}, not an array",
        "type": "model_attributes_type",
    }


def test_field_errors_keep_pydantic_words(client: ApiClient) -> None:
    response = client.post("/v1/networks", json={**XOR_NETWORK, "input_size": "two"})
    assert _only_error(response) == {
        "loc": ["body", "input_size"],
        "msg": "Input should be a valid integer",
        "type": "int_type",  # strict: a string is no integer, "2" no more than "two"
    }


def test_line_and_column_count_like_the_json_module() -> None:
    body = "[1,\n 2,\n\n   x]"
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        expected = f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "ctx": {"error": exc.msg}}
    (item,) = explain([error], content_type="application/json", body=body)
    assert item == {"loc": ["body", 12], "msg": expected, "type": "json_invalid"}


@pytest.mark.parametrize(
    ("headers", "body", "said"),
    [
        ({"content-type": "application/json"}, b'{"name": "d"}', "says 'application/json'"),
        ({}, b"", "has no Content-Type header"),
        (
            {"content-type": "application/x-www-form-urlencoded"},
            b"file=abc",
            "says 'application/x-www-form-urlencoded'",
        ),
    ],
)
def test_an_upload_route_names_multipart(
    client: ApiClient, headers: dict[str, str], body: bytes, said: str
) -> None:
    for path in ("/v1/datasets/upload", "/v1/models/import"):
        response = client.post(path, content=body, headers=headers)
        assert _only_error(response) == {
            "loc": ["body"],
            "msg": "the body is read as a form (curl -F name=@file) only with the header "
            f"'Content-Type: multipart/form-data'; this request {said}",
            "type": "content_type",
        }


def test_a_multipart_upload_without_its_file_still_names_the_field(client: ApiClient) -> None:
    response = client.post("/v1/datasets/upload", data={"name": "d"}, files={"other": b"1"})
    assert _only_error(response) == {
        "loc": ["body", "file"],
        "msg": "Field required: send 'file' (a CSV or an npz), or 'x' and 'y' (two .npy files)",
        "type": "missing",
    }


@pytest.mark.parametrize(
    ("path", "change", "loc", "kind"),
    [
        ("/v1/networks", {"input_size": "2"}, ["body", "input_size"], "int_type"),
        ("/v1/networks", {"input_size": True}, ["body", "input_size"], "int_type"),
        (
            "/v1/networks",
            {"layers": [{"units": "8", "activation": "tanh"}]},
            ["body", "layers", 0, "units"],
            "int_type",
        ),
        ("/v1/datasets/generate", {"n_samples": "10"}, ["body", "n_samples"], "int_type"),
        ("/v1/datasets/generate", {"noise": "0.1"}, ["body", "noise"], "float_type"),
    ],
)
def test_numbers_in_bodies_are_numbers(
    client: ApiClient, path: str, change: dict[str, Any], loc: list[Any], kind: str
) -> None:
    """A string or a boolean where a number goes is refused, not read as one ("10" as 10,
    true as 1)."""
    base = XOR_NETWORK if path == "/v1/networks" else {"kind": "xor"}
    error = _only_error(client.post(path, json={**base, **change}))
    assert error["loc"] == loc and error["type"] == kind, error


@pytest.mark.parametrize(
    ("options", "loc", "kind"),
    [
        ({"epochs": "5"}, ["body", "epochs"], "int_type"),
        ({"epochs": True}, ["body", "epochs"], "int_type"),
        (
            {"optimizer": {"learning_rate": "0.1"}},
            ["body", "optimizer", "learning_rate"],
            "float_type",
        ),
        ({"shuffle": "yes"}, ["body", "shuffle"], "bool_type"),
    ],
)
def test_job_options_are_strict(
    client: ApiClient, options: dict[str, Any], loc: list[Any], kind: str
) -> None:
    network, dataset = make_network(client), make_dataset(client)
    body = {"network_id": network["id"], "dataset_id": dataset["id"], **options}
    error = _only_error(client.post("/v1/jobs", json=body))
    assert error["loc"] == loc and error["type"] == kind, error


def test_a_nan_job_option_is_refused_as_nan(client: ApiClient) -> None:
    """Not as 'less than or equal to 1000', which NaN also fails."""
    network, dataset = make_network(client), make_dataset(client)
    raw = f'{{"network_id": "{network["id"]}", "dataset_id": "{dataset["id"]}", "l2": NaN}}'
    response = client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    error = _only_error(response)
    assert error["loc"] == ["body", "l2"] and error["type"] == "finite_number", error


def test_a_split_that_leaves_no_training_rows_is_refused_at_submit(client: ApiClient) -> None:
    """What the worker would find (a 202 then a failed job): said at submit."""
    network, dataset = make_network(client), make_dataset(client)  # 4 rows
    body = {"network_id": network["id"], "dataset_id": dataset["id"], "validation_split": 0.9}
    error = _only_error(client.post("/v1/jobs", json=body))
    assert error["loc"] == ["body", "validation_split"], error
    assert "leaves no rows to train on" in str(error["msg"])
    assert client.get("/v1/jobs").json()["total"] == 0
    fine = {**body, "validation_split": 0.25}  # 1 row of 4
    assert client.post("/v1/jobs", json=fine).status_code == 202


def test_a_network_no_labels_can_train_is_refused_at_submit(client: ApiClient) -> None:
    """binary_crossentropy over two sigmoid units (multi-label): no label format trains it;
    said at submit, at the network, rather than by a failed job."""
    layers = [{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "sigmoid"}]
    network = make_network(client, layers=layers, loss="binary_crossentropy")
    dataset = make_dataset(client)
    response = client.post(
        "/v1/jobs", json={"network_id": network["id"], "dataset_id": dataset["id"]}
    )
    error = _only_error(response)
    assert error["loc"] == ["body", "network_id"] and "multi-label" in str(error["msg"]), error
