"""The packaging stays true to the code.

README <-> Settings (configuration table) and pyproject (dependencies); docker-compose.yml,
backprop.env and the Dockerfile <-> the ``backprop`` CLI, Settings and the HTTP routes;
.ci/run <-> the README's test command. No Docker engine is needed: the files are parsed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic.fields import FieldInfo
from starlette.routing import Route

from app.cli import build_parser
from app.config import Settings
from app.services.keys import looks_like_key
from tests.processes import stop

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
CI_SCRIPT = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

QUICKSTART_TEST_COMMAND = (
    "python3.11 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
)


# ------------------------------------------------------------------------------ helpers


def readme_section(title: str) -> str:
    """The body of the README's ``## {title}`` section (up to the next ``## ``)."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


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
    mentioned = set(re.findall(r"http://localhost:8000(/[\w/{}$.-]*)", README))
    assert "/docs" in mentioned and "/" in mentioned
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


# ------------------------------------------------------------------------------ walkthrough


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(base_url: str, server: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = log.read_text(errors="replace")
            pytest.fail(f"backprop serve exited with {server.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"backprop serve did not answer /healthz within {timeout} s")


@pytest.mark.slow
def test_readme_walkthrough_runs_against_a_real_server(tmp_path: Path) -> None:
    """The README's curl walkthrough, block by block, against `backprop serve` on SQLite."""
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the README walkthrough needs {', '.join(missing)} on PATH")
    backprop = Path(sys.executable).with_name("backprop")
    assert backprop.is_file(), "the `backprop` console script is not installed next to python"

    blocks = re.findall(r"```bash\n(.*?)```", readme_section("Walkthrough: XOR with curl"), re.S)
    key = "bp_" + "walkthrough-test-key-0123456789"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    script = "\n".join(blocks).replace("http://localhost:8000", base_url)
    script = re.sub(r"^KEY=bp_\S*", f"KEY={key}", script, flags=re.M)
    assert f"KEY={key}" in script

    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'backprop.db'}",
        "BACKPROP_HOST": "127.0.0.1",
        "BACKPROP_PORT": str(port),
        "BACKPROP_WORKERS": "1",
        "BACKPROP_BOOTSTRAP_KEY": key,
    }
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [str(backprop), "serve"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_healthy(base_url, server, log_path, timeout=60)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, f"walkthrough failed:\n{result.stdout}\n{result.stderr}"
        prediction = json.loads(result.stdout.strip().splitlines()[-1])
        assert prediction["labels"] == [0, 1, 1, 0], result.stdout
    finally:
        stop(server)
        log.close()
    assert server.returncode == 0, log_path.read_text(errors="replace")
