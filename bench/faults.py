"""Fault injection at full counts: the figures of BENCHMARKS.md's "Reliability" section.

Runs the scenarios of the fault suite (tests/faults/scenarios.py, the same code the
tests run with small counts) with the counts of the reliability issue, on SQLite and,
when a PostgreSQL server is given, on PostgreSQL; then Schemathesis against the running
service's own OpenAPI document. Prints one Markdown table and writes every raw figure to
a JSON file.

    .venv/bin/python bench/faults.py                                  # SQLite only
    BACKPROP_TEST_POSTGRES_URL=postgresql+psycopg://user@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/faults.py --json faults.json           # and PostgreSQL
    .venv/bin/python bench/faults.py --only kill,race --scale 0.25    # a quick look

Every process is local (loopback), every wait is bounded, and every process the script
starts is killed when it ends. Wall time at full scale: about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.faults.harness import (  # noqa: E402
    Cluster,
    ClusterConfig,
    Workload,
    cluster,
    percentile,
    postgres_database,
)
from tests.faults.scenarios import (  # noqa: E402
    CRASH_POINTS,
    CancelReport,
    cancel_queued,
    cancel_racing_kill,
    cancel_running,
    claim_race,
    crash_around_commits,
    kill_workers_mid_training,
    poison_job,
    restart_server,
    unsafe_inputs,
    write_load,
    zombie_worker,
)

SCHEMATHESIS_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "ignored_auth",
)


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    backend: str
    injected: str
    outcome: str
    errors: int
    figures: str
    seconds: float
    problems: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    scale: float
    postgres_url: str | None
    workdir: Path
    examples: int


def scaled(options: Options, count: int, minimum: int = 1) -> int:
    return max(minimum, round(count * options.scale))


@contextmanager
def fresh_cluster(options: Options, backend: str, name: str, **config: Any) -> Iterator[Cluster]:
    """A migrated cluster on a new SQLite file or a new PostgreSQL database."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-{backend}-", dir=options.workdir))
    if backend == "sqlite":
        with cluster(ClusterConfig(f"sqlite:///{workdir / 'faults.db'}", **config), workdir) as c:
            yield c
        return
    assert options.postgres_url is not None
    with (
        postgres_database(options.postgres_url) as url,
        cluster(ClusterConfig(url, **config), workdir) as c,
    ):
        yield c


def seconds_summary(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {percentile(values, 50):.1f} s, max {max(values):.1f} s"
        if len(values) > 1
        else f"{values[0]:.1f} s"
    )


# --------------------------------------------------------------------------- scenarios


def run_kill(options: Options, backend: str) -> Row:
    kills = scaled(options, 20)
    with fresh_cluster(options, backend, "kill") as c:
        c.serve()
        started = time.monotonic()
        report = kill_workers_mid_training(
            c, c.client(), kills=kills, workload=Workload(epochs=150), seed=2026
        )
        lease = c.config.lease_seconds
    points = [round(100 * epoch / epochs) for epoch, epochs in report.kill_epochs]
    return Row(
        "SIGKILL worker mid-training",
        backend,
        f"{report.kills} kills at {min(points, default=0)}-{max(points, default=0)}% of the run",
        f"{report.survived}/{report.kills} succeeded, {report.identical} bit-identical",
        len(report.problems()),
        f"recovery (kill -> resumed, lease {lease:g} s): "
        + seconds_summary(report.recovery_seconds),
        time.monotonic() - started,
        report.problems(),
        asdict(report),
    )


def run_crash_points(options: Options, backend: str) -> Row:
    with fresh_cluster(options, backend, "crash", max_attempts=10) as c:
        c.serve()
        started = time.monotonic()
        report = crash_around_commits(c, c.client(), workload=Workload(epochs=20))
    ok = sum(status == "succeeded" for status in report.outcomes.values())
    return Row(
        "crash at commit points",
        backend,
        f"{len(CRASH_POINTS)} points: {', '.join(CRASH_POINTS)}",
        f"{ok}/{len(CRASH_POINTS)} succeeded with one model; integrity_check {report.integrity}",
        len(report.problems()),
        "no orphan model, no model-less success",
        time.monotonic() - started,
        report.problems(),
        asdict(report),
    )


def run_zombie(options: Options, backend: str) -> Row:
    runs = scaled(options, 3)
    problems: list[str] = []
    takeovers: list[float] = []
    raws = []
    started = time.monotonic()
    for _ in range(runs):
        with fresh_cluster(options, backend, "zombie", checkpoint_seconds=0.2) as c:
            c.serve()
            report = zombie_worker(c, c.client(), workload=Workload(epochs=300, n_samples=2000))
        problems += report.problems()
        takeovers.append(report.takeover_seconds)
        raws.append(asdict(report))
    clean = runs - len({p.split(":")[0] for p in problems})
    return Row(
        "zombie worker (SIGSTOP past lease, SIGCONT)",
        backend,
        f"{runs} frozen workers woken after takeover",
        f"{max(clean, 0)}/{runs}: attempts = 2, one model, bit-identical",
        len(problems),
        f"takeover after freeze: {seconds_summary(takeovers)}",
        time.monotonic() - started,
        problems,
        {"runs": raws},
    )


def run_race(options: Options, backend: str) -> Row:
    jobs = scaled(options, 200, 8)
    with fresh_cluster(options, backend, "race") as c:
        c.serve()
        report = claim_race(c, c.client(), workers=4, jobs=jobs)
    return Row(
        "claim race, 4 workers",
        backend,
        f"{jobs} short jobs submitted by 8 threads",
        f"{report.succeeded}/{jobs} succeeded, {report.runs} runs in all",
        len(report.problems()),
        f'"database is locked" seen: {len(report.lock_errors)}; ERROR log lines: '
        f"{len(report.error_log_lines)}; {jobs / report.seconds:.1f} jobs/s",
        report.seconds,
        report.problems(),
        asdict(report),
    )


def run_write_load(options: Options, backend: str) -> Row:
    rounds = scaled(options, 10)
    with fresh_cluster(options, backend, "load") as c:
        server = c.serve()
        report = write_load(c, server.base_url, clients=20, rounds=rounds)
    fivexx = sum(n for status, n in report.statuses.items() if status >= 500)
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(report.statuses.items()))
    return Row(
        "API under write load, 2 workers training",
        backend,
        f"20 clients x {rounds} rounds ({report.requests} requests)",
        f"5xx: {fivexx}; {report.jobs_submitted} jobs submitted and finished",
        len(report.problems()),
        f"statuses {statuses}; {report.requests / report.seconds:.0f} req/s",
        report.seconds,
        report.problems(),
        {**asdict(report), "statuses": dict(report.statuses)},
    )


def run_cancel(options: Options, backend: str) -> Row:
    report = CancelReport()
    queued = scaled(options, 100, 5)
    running = scaled(options, 10, 2)
    races = scaled(options, 6, 2)
    started = time.monotonic()
    with fresh_cluster(options, backend, "cancel") as c:
        c.serve()
        api = c.client()
        cancel_queued(c, api, jobs=queued, report=report)
        cancel_running(c, api, jobs=running, report=report)
        cancel_racing_kill(c, api, rounds=races, report=report)
    return Row(
        "cancel",
        backend,
        f"{queued} queued, {running} running, {races} racing a SIGKILL",
        f"queued never started {report.queued_cancelled}/{queued}; running stopped "
        f"{report.running_cancelled}/{running}; stayed cancelled {report.race_cancelled}/{races}",
        len(report.problems()),
        f"cancel -> cancelled (running): {seconds_summary(report.running_stop_seconds)}",
        time.monotonic() - started,
        report.problems(),
        asdict(report),
    )


def run_poison(options: Options, backend: str) -> Row:
    others = scaled(options, 10, 2)
    started = time.monotonic()
    with fresh_cluster(options, backend, "poison", max_attempts=3) as c:
        c.serve()
        report = poison_job(c, c.client(), others=others)
    return Row(
        "poison job (kills every worker)",
        backend,
        f"1 poison job + {others} normal jobs; {report.worker_restarts} worker deaths",
        f"poison {report.poison_status} after {report.poison_attempts} attempts; "
        f"{report.others_succeeded}/{others} others succeeded",
        len(report.problems()),
        f"reason: {report.poison_error}",
        time.monotonic() - started,
        report.problems(),
        asdict(report),
    )


def run_restart(options: Options, backend: str) -> Row:
    jobs = scaled(options, 10, 3)
    started = time.monotonic()
    with fresh_cluster(options, backend, "restart") as c:
        report = restart_server(c, jobs=jobs, workers=2)
    return Row(
        "kill -9 of `backprop serve` + restart",
        backend,
        f"{jobs} jobs: {report.running_at_kill} running, "
        f"{report.queued_at_kill} queued at the kill",
        f"{report.succeeded}/{jobs} succeeded with one model",
        len(report.problems()),
        f"orphan workers after the kill: {len(report.orphans)}",
        time.monotonic() - started,
        report.problems(),
        asdict(report),
    )


def run_unsafe(options: Options, backend: str) -> Row:
    started = time.monotonic()
    with fresh_cluster(options, backend, "unsafe") as c:
        server = c.serve()
        report = unsafe_inputs(c, c.client(), server.base_url)
    statuses: dict[int, int] = {}
    for status in report.answers.values():
        statuses[status] = statuses.get(status, 0) + 1
    return Row(
        "hostile uploads (npz/CSV)",
        backend,
        f"{report.tried} uploads (object arrays, truncated, 10^12 shape, ragged, 10 MB line)",
        "all 4xx" if not report.problems() else "see problems",
        len(report.problems()),
        "statuses " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
        time.monotonic() - started,
        report.problems(),
        asdict(report),
    )


def run_schemathesis(options: Options, backend: str) -> Row:
    """``schemathesis run`` (the CLI) against the live service, every check of the issue."""
    started = time.monotonic()
    with fresh_cluster(options, backend, "schemathesis") as c:
        server = c.serve(workers=1)
        report_path = c.workdir / "schemathesis.json"
        config_path = c.workdir / "schemathesis.toml"
        config_path.write_text(_known_ids_config(c))
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(config_path),
            "run",
            f"{server.base_url}/openapi.json",
            "--checks",
            ",".join(SCHEMATHESIS_CHECKS),
            "--max-examples",
            str(options.examples),
            "--header",
            f"Authorization: Bearer {c.key}",
            "--seed",
            "2026",
            "--workers",
            "2",
            "--no-color",
            "--continue-on-failure",
            "--report",
            "json",
            "--report-json-path",
            str(report_path),
            "--request-timeout",
            "60",
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=900, check=False, cwd=c.workdir
        )
        output = result.stdout + result.stderr
        (options.workdir / "schemathesis.txt").write_text(output)
        summary = _schemathesis_summary(report_path, output)
        document = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
        summary["operations"] = sum(
            method in {"get", "post", "put", "patch", "delete"}
            for item in document["paths"].values()
            for method in item
        )
    problems = [] if result.returncode == 0 else [f"schemathesis exited {result.returncode}"]
    problems += summary.pop("failures", [])
    return Row(
        "Schemathesis (OpenAPI fuzzing)",
        backend,
        f"{summary.get('operations', '?')} operations, up to {options.examples} examples "
        f"each per phase; {summary.get('cases', '?')} test cases",
        "all checks passed"
        if not problems
        else f"{summary.get('cases_detail', {}).get('unique_failures', '?')} unique failures "
        "(see the problems)",
        len(problems),
        "checks: " + ", ".join(SCHEMATHESIS_CHECKS),
        time.monotonic() - started,
        problems,
        summary,
    )


def _known_ids_config(c: Cluster) -> str:
    """A schemathesis.toml giving path parameters the ids of real resources (a dataset,
    a network, a finished job and its model), so that fuzzing reaches the code behind
    ``/v1/jobs/{job_id}``, ``/v1/models/{model_id}/predict``... and not only the 404s."""
    api = c.client()
    workload = Workload(epochs=3, n_samples=40)
    network_id, dataset_id = workload.create(api)
    job_id = api.submit_job(network_id, dataset_id, **workload.options())
    model_id = api.wait_terminal([job_id], timeout=120)[job_id]["model_id"]
    ids = {"dataset_id": dataset_id, "network_id": network_id, "job_id": job_id}
    ids["model_id"] = model_id
    lines = ["[parameters]", *(f'"path.{name}" = "{value}"' for name, value in ids.items())]
    return "\n".join(lines) + "\n"


def _schemathesis_summary(report_path: Path, output: str) -> dict[str, Any]:
    """Case counts, failures and warnings from Schemathesis's JSON report."""
    summary: dict[str, Any] = {"failures": []}
    try:
        data = json.loads(report_path.read_text())
    except (OSError, ValueError):
        summary["failures"] = [f"no JSON report; output tail:\n{output[-3000:]}"]
        return summary
    cases = data.get("test_cases") or {}
    summary["cases"] = cases.get("generated", "?")
    summary["cases_detail"] = cases
    summary["warnings"] = {k: v for k, v in (data.get("warnings") or {}).items() if v}
    summary["errors"] = data.get("errors") or []
    if cases.get("with_failures") or cases.get("errored") or summary["errors"]:
        summary["failures"] = [
            f"{cases.get('unique_failures')} unique failures, {cases.get('errored')} errored; "
            f"output tail:\n{output[-6000:]}"
        ]
    return summary


SCENARIOS: dict[str, tuple[Callable[[Options, str], Row], bool]] = {
    # name: (runner, also on PostgreSQL)
    "kill": (run_kill, True),
    "crash": (run_crash_points, False),
    "zombie": (run_zombie, False),
    "race": (run_race, True),
    "load": (run_write_load, False),
    "cancel": (run_cancel, False),
    "poison": (run_poison, False),
    "restart": (run_restart, False),
    "unsafe": (run_unsafe, False),
    "schemathesis": (run_schemathesis, False),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count (0-1]")
    parser.add_argument("--examples", type=int, default=100, help="Schemathesis examples/op")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BACKPROP_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (default: $BACKPROP_TEST_POSTGRES_URL); none: SQLite only",
    )
    parser.add_argument("--json", type=Path, help="write every raw figure here")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="backprop-faults-") as tmp:
        options = Options(args.scale, args.postgres_url, Path(tmp), args.examples)
        rows: list[Row] = []
        started = time.monotonic()
        for name in names:
            runner, on_postgres = SCENARIOS[name]
            backends = ["sqlite"] + (["postgres"] if on_postgres and options.postgres_url else [])
            for backend in backends:
                print(f"... {name} on {backend}", file=sys.stderr, flush=True)
                try:
                    row = runner(options, backend)
                except Exception as exc:  # a scenario that breaks is a finding, not a crash
                    row = Row(name, backend, "-", "scenario aborted", 1, "-", 0.0, [repr(exc)])
                rows.append(row)
                print(f"    {row.outcome} ({row.seconds:.0f} s)", file=sys.stderr, flush=True)
                for problem in row.problems[:20]:
                    print(f"    PROBLEM: {problem}", file=sys.stderr, flush=True)
        total = time.monotonic() - started
    print_table(rows)
    print(f"\nTotal wall time: {total:.0f} s; problems: {sum(r.errors for r in rows)}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2, default=str))
    return 1 if any(r.errors for r in rows) else 0


def print_table(rows: list[Row]) -> None:
    headers = ["Fault", "DB", "Injected", "Outcome", "Errors", "Figures"]
    body = [[r.scenario, r.backend, r.injected, r.outcome, str(r.errors), r.figures] for r in rows]
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for line in body:
        print("| " + " | ".join(cell.replace("|", "/") for cell in line) + " |")


if __name__ == "__main__":
    sys.exit(main())
