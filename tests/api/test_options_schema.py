"""One declaration per option: the engine, the API's job body and the OpenAPI document
agree on every training option's default, bounds and description, and every fixed set of
names is an OpenAPI enum holding exactly the keys of the engine's registry."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from app.api.schemas.jobs import JobCreate, JobTarget
from app.engine import activations, datasets, initializers, losses, optimizers, schedules
from app.engine.errors import ConfigError
from app.engine.options import MAX_LEARNING_RATE, TrainingOptions
from app.engine.optionspec import Spec, options_of
from tests.api.client import ApiClient

IDS = {"network_id": "net_x", "dataset_id": "ds_x"}
# (path of the group in the job body, its engine dataclass, its OpenAPI component)
GROUPS: list[tuple[tuple[str, ...], type, str]] = [((), TrainingOptions, "JobCreate")]
for _option in options_of(TrainingOptions):
    if _option.spec.options is not None:
        _group = _option.spec.options
        GROUPS.append(((_option.name,), _group, _group.__name__.removesuffix("Options") + "In"))
# Every bounded option, as (path, spec).
BOUNDED = [
    ((*path, option.name), option.spec)
    for path, group, _ in GROUPS
    for option in options_of(group)
    if option.spec.kind in ("number", "integer")
]


@pytest.fixture
def openapi(client: ApiClient) -> dict[str, Any]:
    return client.app.openapi()


def _component(openapi: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = openapi["components"]["schemas"][name]
    return schema


def _ref(prop: dict[str, Any]) -> str:
    """The component a property refers to (directly, or as the non-null choice)."""
    refs = [p["$ref"] for p in prop.get("anyOf", [prop]) if "$ref" in p]
    assert len(refs) == 1, prop
    return str(refs[0]).rsplit("/", 1)[-1]


def _bounds(spec: Spec) -> dict[str, float]:
    assert spec.low is not None and spec.high is not None
    low = "exclusiveMinimum" if spec.open_low else "minimum"
    high = "exclusiveMaximum" if spec.open_high else "maximum"
    return {low: spec.low, high: spec.high}


def _numeric(prop: dict[str, Any]) -> dict[str, Any]:
    """The number/integer schema of a property (the non-null one of a nullable)."""
    kinds = [p for p in prop.get("anyOf", [prop]) if p.get("type") in ("number", "integer")]
    assert len(kinds) == 1, prop
    return kinds[0]


@pytest.mark.parametrize(("path", "group", "component"), GROUPS, ids=[g[2] for g in GROUPS])
def test_openapi_declares_each_option_as_the_engine_does(
    openapi: dict[str, Any], path: tuple[str, ...], group: type, component: str
) -> None:
    schema = _component(openapi, component)
    declared = options_of(group)
    names = [option.name for option in declared]
    own = [name for name in schema["properties"] if name not in JobTarget.model_fields]
    assert own == names, component
    for option in declared:
        prop, spec = schema["properties"][option.name], option.spec
        assert prop["description"] == spec.description, option.name
        if spec.kind == "nested":
            assert spec.options is not None
            assert _ref(prop) == spec.options.__name__.removesuffix("Options") + "In"
            assert prop.get("default") is None
            continue
        assert prop.get("default") == option.default, option.name  # None: not shown
        if spec.kind == "choice":
            enum = _component(openapi, _ref(prop))
            assert tuple(enum["enum"]) == spec.choices, option.name
        elif spec.kind == "flag":
            assert prop["type"] == "boolean"
        else:
            numeric = _numeric(prop)
            assert numeric["type"] == ("integer" if spec.kind == "integer" else "number")
            bounds = {k: v for k, v in numeric.items() if "imum" in k}
            assert bounds == _bounds(spec), option.name
            assert ("anyOf" in prop) == spec.nullable, option.name


def test_the_api_defaults_are_the_engine_defaults() -> None:
    body = JobCreate.model_validate(IDS).model_dump(mode="json", exclude=set(IDS))
    assert body.pop("init_model_id") is None
    assert body == TrainingOptions().to_dict()
    assert TrainingOptions.from_dict(body) == TrainingOptions()


def _body(path: tuple[str, ...], value: float) -> dict[str, Any]:
    """Job options with the option at ``path`` set to ``value`` (and a learning rate that
    lets min_learning_rate reach its own bound: the one rule across fields)."""
    if len(path) == 1:
        return {path[0]: value}
    body: dict[str, Any] = {path[0]: {path[1]: value}}
    if path[1] == "min_learning_rate":
        body["optimizer"] = {"learning_rate": MAX_LEARNING_RATE}
    return body


def _outside(spec: Spec) -> list[float]:
    assert spec.low is not None and spec.high is not None
    if spec.kind == "integer":
        return [spec.low - 1, spec.high + 1]
    low = spec.low if spec.open_low else math.nextafter(spec.low, -math.inf)
    high = spec.high if spec.open_high else math.nextafter(spec.high, math.inf)
    return [low, high]


def _inside(spec: Spec) -> list[float]:
    assert spec.low is not None and spec.high is not None
    if spec.kind == "integer":
        return [spec.low, spec.high]
    low = math.nextafter(spec.low, math.inf) if spec.open_low else spec.low
    high = math.nextafter(spec.high, -math.inf) if spec.open_high else spec.high
    return [low, high]


@pytest.mark.parametrize(("path", "spec"), BOUNDED, ids=[".".join(p) for p, _ in BOUNDED])
def test_the_api_and_the_engine_refuse_and_accept_the_same_values(
    path: tuple[str, ...], spec: Spec
) -> None:
    for value in _outside(spec):
        body = _body(path, value)
        with pytest.raises(ValidationError) as api:
            JobCreate.model_validate({**IDS, **body})
        assert [tuple(e["loc"]) for e in api.value.errors()] == [path], value
        with pytest.raises(ConfigError) as engine:
            TrainingOptions.from_dict(body)
        assert engine.value.loc == path, value
    for value in _inside(spec):
        body = _body(path, value)
        accepted = JobCreate.model_validate({**IDS, **body})
        options = accepted.model_dump(mode="json", exclude=set(JobTarget.model_fields))
        assert TrainingOptions.from_dict(options).to_dict() == options, value


# (component, the engine registry whose keys it must list)
ENUMS: list[tuple[str, tuple[str, ...]]] = [
    ("OptimizerName", tuple(optimizers.OPTIMIZERS)),
    ("ScheduleName", tuple(schedules.SCHEDULES)),
    ("ActivationName", tuple(activations.ACTIVATIONS)),
    ("LossName", tuple(losses.LOSSES)),
    ("InitName", initializers.CHOICES),
    ("DatasetKind", tuple(datasets.GENERATORS)),
]


@pytest.mark.parametrize(("component", "names"), ENUMS, ids=[e[0] for e in ENUMS])
def test_fixed_names_are_enums_of_the_engine_registries(
    openapi: dict[str, Any], component: str, names: tuple[str, ...]
) -> None:
    enum = _component(openapi, component)
    assert enum["type"] == "string" and tuple(enum["enum"]) == names


def test_name_fields_refer_to_their_enums(openapi: dict[str, Any]) -> None:
    layer = _component(openapi, "LayerSpec")["properties"]
    network = _component(openapi, "NetworkCreate")["properties"]
    generate = _component(openapi, "DatasetGenerate")["properties"]
    assert _ref(layer["activation"]) == "ActivationName"
    assert _ref(network["loss"]) == "LossName"
    assert _ref(network["init"]) == "InitName"
    assert _ref(generate["kind"]) == "DatasetKind"
    assert _ref(_component(openapi, "OptimizerIn")["properties"]["name"]) == "OptimizerName"
    assert _ref(_component(openapi, "ScheduleIn")["properties"]["name"]) == "ScheduleName"


def test_generated_dataset_limits_are_the_engines(
    openapi: dict[str, Any], client: ApiClient
) -> None:
    generate = _component(openapi, "DatasetGenerate")["properties"]
    assert generate["n_samples"]["maximum"] == datasets.MAX_SAMPLES
    assert generate["classes"]["maximum"] == datasets.MAX_CLASSES
    assert generate["noise"]["maximum"] == datasets.MAX_NOISE
    over = {"kind": "xor", "n_samples": datasets.MAX_SAMPLES + 1}
    response = client.post("/v1/datasets/generate", json=over)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "n_samples"]
