"""Shared plumbing of the service benchmarks (job_throughput, serve, memory).

Import this module *before* numpy: :func:`clean_blas_env` re-executes the script without
the ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` overrides that these machines set (they
force an older, ~2x slower GEMM kernel). Only the benchmark command loses them; tests and
CI keep whatever the environment says. Children (``backprop serve``, workers, clients)
inherit the cleaned environment.

Nothing here imports numpy at module level.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_REMOVED_VAR = "BACKPROP_BENCH_REMOVED_BLAS_ENV"

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def clean_blas_env() -> None:
    """Re-exec this script without the BLAS overrides (no-op when none is set)."""
    present = {k: os.environ[k] for k in BLAS_OVERRIDES if k in os.environ}
    if not present:
        return
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
    env[_REMOVED_VAR] = json.dumps(present)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def removed_blas_env() -> dict[str, str]:
    """The overrides :func:`clean_blas_env` removed, for the report."""
    raw = os.environ.get(_REMOVED_VAR)
    return dict(json.loads(raw)) if raw else {}


# --------------------------------------------------------------------------- conditions


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def numpy_blas() -> dict[str, Any]:
    """numpy's BLAS as threadpoolctl sees it in *this* process (numpy must be importable)."""
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in str(info.get("filepath", "")):
            return {
                "library": info.get("internal_api"),
                "version": info.get("version"),
                "kernel": info.get("architecture"),
                "threads": info.get("num_threads"),
            }
    return {"library": "unknown", "version": None, "kernel": None, "threads": None}


def child_numpy_blas(env: Mapping[str, str]) -> dict[str, Any]:
    """numpy's BLAS kernel in a fresh process with ``env`` (what the worker will get)."""
    here = str(Path(__file__).parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); import _service; "
        "print(json.dumps(_service.numpy_blas()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=dict(env), capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


@dataclass
class Conditions:
    """What a figure was measured under; printed with every table."""

    machine: str
    cores: int
    blas: dict[str, Any]
    removed_env: dict[str, str]
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def collect(cls, **versions: str) -> Conditions:
        import numpy

        return cls(
            machine=cpu_model(),
            cores=os.cpu_count() or 1,
            blas=numpy_blas(),
            removed_env=removed_blas_env(),
            versions={"python": sys.version.split()[0], "numpy": numpy.__version__, **versions},
        )

    def describe(self) -> str:
        blas = self.blas
        removed = (
            ", ".join(f"{k}={v}" for k, v in self.removed_env.items())
            if self.removed_env
            else "none were set"
        )
        vers = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (
            f"machine: {self.machine}, {self.cores} cores; load average now {load_average()}\n"
            f"numpy BLAS: {blas['library']} {blas['version']}, kernel {blas['kernel']}, "
            f"{blas['threads']} threads (BLAS overrides removed for this run: {removed})\n"
            f"versions: {vers}"
        )


# --------------------------------------------------------------------------- the service


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url`` answers 200 (raise if ``proc`` dies or time runs out)."""
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s (last: {last})")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL the process group (``proc`` must lead its own session)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@dataclass
class Service:
    """A running ``backprop serve`` on a temporary SQLite database."""

    base_url: str
    key: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, timeout: float = 120.0) -> Any:
        import httpx

        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def service_env(
    workdir: Path, *, workers: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a benchmark ``backprop serve`` (temp SQLite and blob store,
    bootstrap key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")}
    env.update(
        {
            "BACKPROP_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
            "BACKPROP_DATA_DIR": str(workdir / "data"),
            "BACKPROP_BOOTSTRAP_KEY": "bp_bench_" + os.urandom(16).hex(),
            "BACKPROP_HOST": "127.0.0.1",
            "BACKPROP_PORT": str(free_port()),
            "BACKPROP_WORKERS": str(workers),
            "BACKPROP_LOG_LEVEL": "warning",
        }
    )
    if _REMOVED_VAR in os.environ:
        env[_REMOVED_VAR] = os.environ[_REMOVED_VAR]
    env.update(extra or {})
    return env


@contextlib.contextmanager
def running_service(
    *, workers: int = 1, extra_env: Mapping[str, str] | None = None, ready_timeout: float = 60.0
) -> Iterator[Service]:
    """Start ``backprop serve`` (+ ``workers`` worker processes); stop it on exit.

    ``workers=0`` starts the API alone; serve migrates the database first.
    """
    workdir = Path(tempfile.mkdtemp(prefix="backprop-bench-"))
    env = service_env(workdir, workers=workers, extra=extra_env)
    log_path = workdir / "serve.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(VENV_BIN / "backprop"), "serve"],
                env=env,
                cwd=str(workdir),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{env['BACKPROP_PORT']}"
        service = Service(base, env["BACKPROP_BOOTSTRAP_KEY"], env, proc, workdir, log_path)
        try:
            wait_for_http(base + "/healthz", ready_timeout, proc)
            if workers > 0:
                wait_for_http(base + "/readyz", ready_timeout, proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n--- serve log ---\n{service.log_tail()}") from exc
        yield service
    finally:
        if proc is not None:
            stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- API steps


def check(response: Any, expected: int) -> dict[str, Any]:
    if response.status_code != expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:500]}"
        )
    return dict(response.json())


def upload_npz(client: Any, *, name: str, npz: bytes) -> dict[str, Any]:
    """POST /v1/datasets/upload with an npz of arrays ``x`` and ``y``."""
    files = {"file": (f"{name}.npz", npz, "application/octet-stream")}
    return check(client.post("/v1/datasets/upload", files=files, data={"name": name}), 201)


def create_network(
    client: Any, *, name: str, sizes: list[int], hidden: str, output: str, seed: int = 0
) -> dict[str, Any]:
    """POST /v1/networks for an MLP ``sizes`` = [n0, n1, ..., nL]."""
    layers = [{"units": n, "activation": hidden} for n in sizes[1:-1]]
    layers.append({"units": sizes[-1], "activation": output})
    body = {"name": name, "input_size": sizes[0], "layers": layers, "seed": seed}
    return check(client.post("/v1/networks", json=body), 201)


def submit_job(client: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    return check(client.post("/v1/jobs", json=dict(body)), 202)


TERMINAL = {"succeeded", "failed", "cancelled"}


def wait_for_job(client: Any, job_id: str, *, timeout: float, poll: float = 0.1) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until it is terminal; raise if it did not succeed."""
    deadline = time.monotonic() + timeout
    while True:
        job = check(client.get(f"/v1/jobs/{job_id}"), 200)
        if job["status"] in TERMINAL:
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job_id} ended {job['status']}: {job.get('error')}")
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
        time.sleep(poll)


def parse_time(value: str) -> float:
    """An API timestamp (ISO 8601) as POSIX seconds."""
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A Markdown table (pasted into BENCHMARKS.md as is)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
