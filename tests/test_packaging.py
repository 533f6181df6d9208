"""The packaging stays true to the code.

README <-> Settings (configuration table) and pyproject (dependencies); docker-compose.yml,
backprop.env and the Dockerfile <-> the ``backprop`` CLI, Settings and the HTTP routes;
.ci/run <-> the README's test command. No Docker engine is needed: the files are parsed.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic.fields import FieldInfo
from starlette.routing import Route

from app.cli import build_parser
from app.config import Settings
from app.services.keys import looks_like_key
from tests.readme import README, ROOT, readme_section

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
CI_SCRIPT = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

QUICKSTART_TEST_COMMAND = (
    "python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
)


# ------------------------------------------------------------------------------ helpers


def table_rows(markdown: str) -> list[list[str]]:
    """Cells of every body row of the markdown tables in ``markdown``."""
    rows = []
    for line in markdown.splitlines():
        line = line.strip()
        if not line.startswith("|") or re.fullmatch(r"\|[\s:|-]+\|", line):
            continue
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:] if rows else rows  # drop the header row


def code(cell: str) -> str:
    """A table cell without its surrounding backticks."""
    return cell.strip().removeprefix("`").removesuffix("`")


def render_default(field: FieldInfo) -> str:
    if field.default_factory is not None or field.default in ("", None):
        # Computed at start (from another setting, or the machine): the field's
        # description says what it is, "(default: ...)".
        match = re.search(r"\(default: ([^)]+)\)", field.description or "")
        if match or field.default is not None:
            assert match, "a computed default must be explained in the description"
            return match.group(1)
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def settings_table() -> str:
    """The configuration table as the README should have it (printed when it drifts)."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = render_default(field)
        lines.append(f"| `BACKPROP_{name.upper()}` | {default} | {field.description} |")
    return "\n".join(lines)


def parse_cli(argv: list[str]) -> None:
    """Parse ``backprop ARGS...`` with the real CLI parser; fail the test if it refuses."""
    assert argv[0] == "backprop", f"not a backprop command: {argv}"
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"the backprop CLI refuses {shlex.join(argv)!r} (exit {exc.code})")


def backprop_commands(command: list[str] | str) -> list[list[str]]:
    """The ``backprop`` invocations in a compose ``command`` (exec form or ``sh -c``)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] != ["sh", "-c"]:
        return [argv]
    commands = []
    for part in argv[2].split("&&"):
        words = shlex.split(part)
        commands.append(words[1:] if words[0] == "exec" else words)
    return commands


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = COMPOSE["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def service_environment(name: str) -> dict[str, str]:
    """Every variable a compose service gets: its env_file(s), then ``environment``."""
    spec = service(name)
    values: dict[str, str] = {}
    env_files = spec.get("env_file", [])
    for env_file in [env_files] if isinstance(env_files, str) else env_files:
        values.update(env_file_values(ROOT / env_file))
    environment = spec.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    values.update({key: str(value) for key, value in environment.items()})
    return values


def dockerfile_instructions(keyword: str) -> list[str]:
    """Arguments of every ``keyword`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{keyword}\s+(.*)$", joined, re.M)]


def route_paths() -> set[str]:
    """Paths the app answers: the documented API (OpenAPI) and the plain routes (/docs, /)."""
    from app.main import create_app  # here, so a broken app fails only the tests that need it

    app = create_app(Settings(database_url="sqlite://"))
    plain = {route.path for route in app.routes if isinstance(route, Route)}
    return plain | set(app.openapi()["paths"])


# ------------------------------------------------------------------------------ README


def test_readme_configuration_table_lists_every_setting_with_its_default() -> None:
    rows = table_rows(readme_section("Configuration"))
    documented = {code(row[0]): row[1] for row in rows if code(row[0]).startswith("BACKPROP_")}
    expected = {
        f"BACKPROP_{name.upper()}": render_default(field)
        for name, field in Settings.model_fields.items()
    }
    assert documented == expected, "README configuration table drifted; it should be:\n" + (
        settings_table()
    )


def test_readme_quickstart_has_exactly_the_two_setup_commands() -> None:
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", readme_section("Quickstart"), re.S)
    commands = [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert commands == [
        "python3.11 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/backprop serve",
        QUICKSTART_TEST_COMMAND,
    ]
    parse_cli(["backprop", "serve"])


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = [line.strip() for line in CI_SCRIPT.splitlines()]
    for step in QUICKSTART_TEST_COMMAND.split(" && "):
        # Each step is a line of .ci/run of its own (the pytest line adds `|| status=$?`).
        assert any(line == step or line.startswith(step + " ") for line in ci_lines), (
            f".ci/run does not run the README's {step!r}"
        )
    assert "set -euo pipefail" in CI_SCRIPT
    assert "BACKPROP_TEST_POSTGRES_URL=" in CI_SCRIPT
    assert "ruff check app tests bench" in CI_SCRIPT
    assert any(line.startswith(".venv/bin/mypy") for line in ci_lines)
    assert "[bench]" not in CI_SCRIPT  # torch would pull gigabytes


def test_readme_lists_every_runtime_dependency_with_a_reason() -> None:
    reasons = {}
    for row in table_rows(readme_section("Dependencies")):
        package = re.match(r"`([^`]+)`", row[0])
        assert package, f"README dependency row without a `package`: {row}"
        reasons[package.group(1).lower()] = row[-1]
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
        assert name in reasons, f"README dependency table lacks {name}"
        assert len(reasons[name]) > 10, f"README gives no reason for {name}"


def test_readme_mentions_only_existing_routes() -> None:
    patterns = [re.compile(re.sub(r"\{[^}]+\}", r"[^/]+", path) + "$") for path in route_paths()]
    mentioned = set(re.findall(r"(?:http://localhost:8000|\$BASE)(/[\w/{}$.-]*)", README))
    assert "/docs" in mentioned and "/" in mentioned and "/redoc" in mentioned
    assert "/v1/datasets/upload" in mentioned
    for url_path in mentioned:
        url_path = re.sub(r"\$\{?\w+\}?", "x", url_path.rstrip("."))
        assert any(p.match(url_path) for p in patterns), f"README mentions {url_path}: no route"


def test_console_script_is_the_cli() -> None:
    assert PYPROJECT["project"]["scripts"] == {"backprop": "app.cli:main"}
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


# ------------------------------------------------------------------------------ compose


def test_compose_commands_exist_in_the_cli() -> None:
    seen = []
    for name, spec in COMPOSE["services"].items():
        if "command" in spec and name not in {"db", "s3"}:
            for argv in backprop_commands(spec["command"]):
                parse_cli(argv)
                seen.append(argv[:2])
    assert ["backprop", "migrate"] in seen
    assert ["backprop", "serve"] in seen
    assert ["backprop", "worker"] in seen


def test_compose_sets_only_real_settings_and_a_valid_bootstrap_key() -> None:
    fields = {f"BACKPROP_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "worker"):
        environment = service_environment(name)
        unknown = {key for key in environment if key.startswith("BACKPROP_")} - fields
        assert not unknown, f"{name} sets variables that are no setting: {unknown}"
        assert looks_like_key(environment["BACKPROP_BOOTSTRAP_KEY"])
        fields_set = {k.removeprefix("BACKPROP_").lower(): v for k, v in environment.items()}
        settings = Settings(**fields_set)
        assert settings.database_url.startswith("postgresql+psycopg://")


def test_compose_topology() -> None:
    db, api, worker = service("db"), service("api"), service("worker")
    assert db["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(str(volume).startswith("pgdata:") for volume in db["volumes"])
    assert "pgdata" in COMPOSE["volumes"]

    commands = backprop_commands(api["command"])
    assert [argv[:2] for argv in commands] == [["backprop", "migrate"], ["backprop", "serve"]]
    serve = build_parser().parse_args(commands[-1][1:])
    assert serve.workers == 0, "the api container must leave training to the workers"
    assert serve.host == "0.0.0.0"
    assert any(str(port).endswith("8000:8000") for port in api["ports"])
    assert api["depends_on"]["db"]["condition"] == "service_healthy"

    assert backprop_commands(worker["command"]) == [["backprop", "worker"]]
    assert worker["deploy"]["replicas"] >= 2
    assert worker["restart"] == "on-failure"
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"

    # Blobs go to the s3 service, whose credentials are the ones the containers send.
    s3 = service("s3")
    assert s3["image"].startswith("chrislusf/seaweedfs")
    assert "-s3" in s3["command"] and any(str(v).startswith("s3data:") for v in s3["volumes"])
    for spec in (api, worker):
        assert spec["depends_on"]["s3"]["condition"] == "service_healthy"
    environment = service_environment("worker")
    assert environment["BACKPROP_BLOB_URL"].startswith("s3://")
    assert environment["BACKPROP_S3_ENDPOINT_URL"] == "http://s3:8333"
    (identity,) = json.loads((ROOT / "seaweedfs-s3.json").read_text())["identities"]
    (credentials,) = identity["credentials"]
    assert environment["AWS_ACCESS_KEY_ID"] == credentials["accessKey"]
    assert environment["AWS_SECRET_ACCESS_KEY"] == credentials["secretKey"]

    # The URL the containers use reaches the db service with its credentials.
    url = service_environment("api")["BACKPROP_DATABASE_URL"]
    credentials = db["environment"]
    user, password, database = (credentials[f"POSTGRES_{k}"] for k in ("USER", "PASSWORD", "DB"))
    assert url == f"postgresql+psycopg://{user}:{password}@db:5432/{database}"


def test_compose_builds_the_image_once() -> None:
    builders = [name for name, spec in COMPOSE["services"].items() if "build" in spec]
    assert builders == ["api"], "one service builds the image; the others run its tag"
    tag = service("api")["image"]
    worker = service("worker")
    assert worker["image"] == tag and "build" not in worker
    assert worker["pull_policy"] == "never", "a local tag: never pulled from a registry"


def test_dockerfile_says_it_needs_buildkit() -> None:
    if any("--mount=" in run for run in dockerfile_instructions("RUN")):
        assert "BuildKit" in DOCKERFILE
        assert "BuildKit" in (ROOT / "docker-compose.yml").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ Dockerfile


def test_dockerfile_cmd_and_healthcheck_use_what_exists() -> None:
    (cmd,) = dockerfile_instructions("CMD")
    argv = json.loads(cmd)
    parse_cli(argv)
    assert argv == ["backprop", "serve", "--host", "0.0.0.0"]

    (healthcheck,) = dockerfile_instructions("HEALTHCHECK")
    probe = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert probe[:2] == ["python", "-c"], "the health check needs no curl in the image"
    assert "/healthz" in probe[2]
    assert "/healthz" in route_paths()


def test_dockerfile_final_stage_is_slim_non_root_and_has_postgres() -> None:
    stages = re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]
    assert len(stages) >= 2, "build wheels in a builder stage, install them in the final one"
    final = stages[-1]
    assert "python:3.11-slim" in DOCKERFILE
    assert not re.search(r"build-essential|gcc|apt-get install", final)
    user = re.search(r"^USER\s+(\S+)", final, re.M)
    assert user and user.group(1) not in {"root", "0"}
    assert "['postgres']" in DOCKERFILE or "[postgres]" in DOCKERFILE


def test_docker_build_context_has_what_the_dockerfile_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for copy in dockerfile_instructions("COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _destination = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
            assert source not in ignored, f".dockerignore drops {source}"
    # The wheel's metadata needs README.md; the wheel carries the migrations.
    copied = {s for copy in dockerfile_instructions("COPY") for s in copy.split()[:-1]}
    assert {"pyproject.toml", "README.md", "app", "migrations"} <= copied
