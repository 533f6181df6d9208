"""Every grid path and value is checked before anything is stored: 422 naming the path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.services.sweep_grid import path_of, trial_params
from app.storage.database import Database
from app.storage.tables import Job
from tests.api.client import ApiClient
from tests.api.sweeps import NETWORK, make_data, sweep_body

OUT = {"units": 1, "activation": "sigmoid"}
RANDOM = {"name": "random", "trials": 1, "seed": 0}
CASES: list[tuple[dict[str, Any], list[Any]]] = [
    (
        {"grid": {"job.optimizer.learning_rte": [0.1]}},
        ["body", "grid", "job.optimizer.learning_rte"],
    ),
    (
        {"grid": {"job.optimizer.learning_rate": [0.1, -1]}},
        ["body", "grid", "job.optimizer.learning_rate"],
    ),
    ({"grid": {"job.batch_size": [8, "many"]}}, ["body", "grid", "job.batch_size"]),
    ({"grid": {"model.units": [1]}}, ["body", "grid", "model.units"]),
    ({"grid": {"job.": [1]}}, ["body", "grid", "job."]),
    ({"grid": {"job.dataset_id": ["ds_x"]}}, ["body", "grid", "job.dataset_id"]),
    ({"grid": {"job.batch_size": []}}, ["body", "grid", "job.batch_size"]),
    (
        {"grid": {"network.layers": [[{"units": 0, "activation": "relu"}, OUT]]}},
        ["body", "grid", "network.layers"],
    ),
    (
        {"grid": {"network.layers": [[{"units": 3, "activation": "nope"}, OUT]]}},
        ["body", "grid", "network.layers"],
    ),
    (
        {"grid": {"job.optimizer.learning_rate": {"log_uniform": [0.1, 0.2]}}},
        ["body", "grid", "job.optimizer.learning_rate"],
    ),
    (
        {
            "grid": {"job.epochs": [2, 4]},
            "strategy": {"name": "halving", "factor": 2, "min_epochs": 1},
        },
        ["body", "grid", "job.epochs"],
    ),
    (
        {
            "grid": {"job.optimizer.learning_rate": {"log_uniform": [0, 1]}},
            "strategy": {"name": "random", "trials": 2},
        },
        ["body", "grid", "job.optimizer.learning_rate", "log_uniform"],
    ),
    (
        {
            "grid": {"job.batch_size": {"int_uniform": [1.5, 4]}},
            "strategy": {"name": "random", "trials": 2},
        },
        ["body", "grid", "job.batch_size", "int_uniform"],
    ),
    (
        {"grid": {"job.l2": {"uniform": [1, 0]}}, "strategy": {"name": "random", "trials": 2}},
        ["body", "grid", "job.l2", "uniform"],
    ),
    (
        {"grid": {"job.l2": {"normal": [0, 1]}}, "strategy": {"name": "random", "trials": 2}},
        ["body", "grid", "job.l2"],
    ),
    (  # bounds past 64-bit integers, a range past the largest float
        {"grid": {"job.seed": {"int_uniform": [0, 1e30]}}, "strategy": RANDOM},
        ["body", "grid", "job.seed", "int_uniform"],
    ),
    (
        {"grid": {"job.l2": {"uniform": [-1e308, 1e308]}}, "strategy": RANDOM},
        ["body", "grid", "job.l2", "uniform"],
    ),
    # A path through what is not an object: nothing there to set (and no default to use).
    *(
        (
            {
                "job": {"epochs": 2, "optimizer": bad},
                "grid": {"job.optimizer.learning_rate": [0.1]},
            },
            ["body", "grid", "job.optimizer.learning_rate"],
        )
        for bad in ("sgd", None)
    ),
    *(
        ({"grid": {path: [3, 5]}}, ["body", "grid", path])
        for path in ("network.layers.0.units", "network.input_size.x", "job.optimizer.foo.bar")
    ),
    ({"grid": {"network.name": ["a", "b"]}}, ["body", "grid", "network.name"]),
    # Random search checks every alternative, drawn or not.
    *(
        (
            {"grid": {"job.batch_size": values}, "strategy": RANDOM},
            ["body", "grid", "job.batch_size"],
        )
        for values in ([8, 16, "many"], [8, 16, -5])
    ),
    ({"network": {"input_size": 0, "layers": [OUT]}}, ["body", "network", "input_size"]),
    ({"network": {"name": "n", "input_size": 2, "layers": [OUT]}}, ["body", "network", "name"]),
    ({"job": {"network_id": "net_x"}}, ["body", "job", "network_id"]),
    ({"job": {"validation_split": 0}}, ["body", "metric"]),  # val_ needs a validation split
    ({"metric": "val_r2"}, ["body", "metric"]),  # a classifier has no r2
    ({"strategy": {"name": "annealing"}}, ["body", "strategy"]),
    ({"grid": {}}, ["body", "grid"]),
    # Numbers are strict here as in job and network bodies: 2, not "2", 2.0 or true.
    *(({"max_parallel": bad}, ["body", "max_parallel"]) for bad in ("2", 2.0, True)),
    *(
        ({"strategy": {**RANDOM, key: bad}}, ["body", "strategy", "random", key])
        for key in ("trials", "seed")
        for bad in ("1", 1.0, True)
    ),
    *(
        (
            {"strategy": {"name": "halving", "factor": 2, "min_epochs": 1, key: bad}},
            ["body", "strategy", "halving", key],
        )
        for key in ("factor", "min_epochs")
        for bad in ("2", 2.0, True)
    ),
    (
        {"grid": {"job.batch_size": {"int_uniform": [1.0, 10]}}, "strategy": RANDOM},
        ["body", "grid", "job.batch_size", "int_uniform"],
    ),
    # The network and job checks shared with POST /v1/networks and /v1/jobs: located in
    # the sweep (the grid path, or the sweep's own network), not at their body's fields.
    (
        {"grid": {"network.loss": ["binary_crossentropy", "categorical_crossentropy"]}},
        ["body", "grid", "network.loss"],
    ),
    (
        {"network": {**NETWORK, "loss": "categorical_crossentropy"}},
        ["body", "network", "loss"],
    ),
    (
        {
            "grid": {
                "network.layers": [
                    [OUT],
                    [{"units": 100_000, "activation": "relu"}, OUT],
                ]
            }
        },
        ["body", "grid", "network.layers"],
    ),
    # Integers past the largest float (JSON can spell them): refused, not a 500.
    *(
        (
            {"grid": {"job.seed": {kind: [1, 10**400]}}, "strategy": RANDOM},
            ["body", "grid", "job.seed", kind],
        )
        for kind in ("int_uniform", "uniform", "log_uniform")
    ),
]


@pytest.mark.parametrize(("change", "loc"), CASES)
def test_refusals_name_the_path(
    client: ApiClient, db: Database, change: dict[str, Any], loc: list[Any]
) -> None:
    data = make_data(client)
    response = client.post("/v1/sweeps", json=sweep_body(data, **change))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"][:1]
    assert error["loc"][: len(loc)] == loc, error
    with db.read_session() as session:
        assert session.query(Job).count() == 0
    assert client.get("/v1/sweeps").json()["total"] == 0


def test_the_dataset_must_fit_and_exist(client: ApiClient) -> None:
    data = make_data(client)
    response = client.post("/v1/sweeps", json=sweep_body("ds_0000000000000000"))
    assert response.status_code == 404
    assert response.json()["detail"][0]["loc"] == ["body", "dataset_id"]
    wide = {"input_size": 3, "layers": [OUT]}
    response = client.post("/v1/sweeps", json=sweep_body(data, network=wide))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "dataset_id"]


@pytest.mark.parametrize(
    ("grid", "path"),
    [
        ({"network.input_size": [2, 3]}, "network.input_size"),
        ({"network.layers": [[OUT], [{"units": 3, "activation": "softmax"}]]}, "network.layers"),
    ],
)
def test_a_grid_value_the_dataset_does_not_fit_is_named(
    client: ApiClient, grid: dict[str, Any], path: str
) -> None:
    """Input size or output layer set by a grid path: the refusal names that path, not
    the dataset the other alternatives fit."""
    data = make_data(client)
    response = client.post("/v1/sweeps", json=sweep_body(data, grid=grid))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "grid", path], error


def test_random_search_refuses_a_nan_alternative_it_may_not_draw(client: ApiClient) -> None:
    """A NaN among the alternatives (a JSON body may spell it) is refused, not stored as
    null."""
    data = make_data(client)
    body = sweep_body(data, grid={"job.batch_size": [8, 16, 0]}, strategy=RANDOM)
    raw = json.dumps(body).replace('"job.batch_size": [8, 16, 0]', '"job.batch_size": [8, 16, NaN]')
    response = client.post("/v1/sweeps", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:3] == ["body", "grid", "job.batch_size"]


def test_which_grid_path_an_error_falls_under() -> None:
    paths = ["network.layers", "job.optimizer.foo.bar", "network.seed"]
    assert path_of(("network", "layers", 0, "units"), paths) == "network.layers"  # below it
    assert path_of(("job", "optimizer", "foo"), paths) == "job.optimizer.foo.bar"  # above it
    assert path_of(("network",), paths) is None  # the whole body: no path's fault
    assert path_of(("job", "epochs"), paths) is None


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ([], "1 to 1000 alternatives, not 0"),
        (list(range(1001)), "1 to 1000 alternatives, not 1001"),
        (8, "not a number"),
        ("8", "not a string"),
        (None, "not null"),
        (True, "not a boolean"),
    ],
)
def test_a_grid_value_of_the_wrong_shape_is_one_error_at_its_path(
    client: ApiClient, values: Any, words: str
) -> None:
    """Neither a list of alternatives nor a distribution: one error, at the path itself
    (not one per branch of a union, with a type's name at the end of its loc)."""
    data = make_data(client)
    response = client.post("/v1/sweeps", json=sweep_body(data, grid={"job.batch_size": values}))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "grid", "job.batch_size"], error
    assert words in error["msg"], error


def test_int_uniform_draws_exact_integers_over_the_whole_64_bit_range() -> None:
    """Bounds past 2**53 are not rounded through a float: drawn as given, ends included."""
    random = {"name": "random", "trials": 40, "seed": 0}
    near = trial_params({"job.seed": {"int_uniform": [2**60, 2**60 + 1]}}, random)
    assert {trial["job.seed"] for trial in near} == {2**60, 2**60 + 1}
    whole = trial_params({"job.seed": {"int_uniform": [-(2**63), 2**63 - 1]}}, random)
    assert all(-(2**63) <= trial["job.seed"] < 2**63 for trial in whole)
    assert all(type(trial["job.seed"]) is int for trial in whole)
