"""``backprop serve``: the first API key, then the API process and N worker processes.

The supervisor runs the API (uvicorn serving ``app.main:create_app`` with the slow-client
limits of :mod:`app.api.http_server`) and each worker
(``python -m app.cli worker``) as child processes in its own process group and restarts
any of them that exits, the API included: at once when it had run for
:data:`HEALTHY_RUN_SECONDS`, otherwise after a delay that doubles from 1 s up to
:data:`MAX_RESTART_DELAY` while it keeps dying young (there is no limit on the number of
restarts). On SIGINT/SIGTERM it asks every child to stop with SIGTERM — workers finish
their batch and release their jobs to the queue — then waits, kills what is left after
:data:`STOP_GRACE_SECONDS`, and exits with status 0. Every
``settings.gc_interval_seconds`` (from the start on) it runs ``backprop gc`` as a child
process, one at a time, so that a long collection never delays the supervision.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from prometheus_client import multiprocess

from app.config import Settings

log = logging.getLogger("backprop.serve")

STOP_GRACE_SECONDS = 30.0
CHECK_SECONDS = 0.5
HEALTHY_RUN_SECONDS = 60.0  # a child that lived this long restarts without delay
MAX_RESTART_DELAY = 30.0


def announce_new_key(key: str, *, owner: str, host: str, port: int) -> None:
    """Print a new key of ``owner`` once, prominently, the key alone on its own line."""
    rule = "=" * 72
    print(
        f"\n{rule}\n"
        f"No API key existed, so Backprop created one for owner {owner!r}.\n"
        "It is shown only this once; keep it somewhere safe:\n\n"
        f"{key}\n\n"
        f"Paste it in http://{host}:{port}/docs -> Authorize, or send it as the header\n"
        "'Authorization: Bearer <key>'. More keys: `backprop keys create NAME`.\n"
        f"{rule}\n",
        flush=True,
    )


METRICS_FOLDER_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_environment(settings: Settings, threads: int | None = None) -> dict[str, str]:
    """The children's environment with BLAS thread counts that do not oversubscribe the cores.

    Each NumPy process would otherwise start one BLAS thread per core: N busy workers on
    N cores would run N*N spinning threads (measured 3-8x slower on this 2-core box).
    Variables the operator set are kept.
    """
    threads = settings.blas_threads or threads or 1
    env = dict(os.environ)
    for name in BLAS_THREAD_VARIABLES:
        env.setdefault(name, str(threads))
    return env


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_delay: float = 0.0
    restart_at: float = field(default=0.0)

    env: dict[str, str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, env=self.env)
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process is not None else None


@contextmanager
def metrics_folder(children: list[Child]) -> Iterator[None]:
    """Give the API process(es) and the workers one ``PROMETHEUS_MULTIPROC_DIR``: the
    operator's if set, else a fresh temporary folder, removed at exit. There every API
    process writes its request and model cache metrics, every worker its blob cache
    counts, and ``/metrics`` sums them (see app.api.prometheus), so the counts survive the
    replacement of a process and hold with several."""
    for child in children:
        child.env = child.env if child.env is not None else dict(os.environ)
    folder = os.environ.get(METRICS_FOLDER_VARIABLE)
    made = not folder
    if not folder:
        folder = tempfile.mkdtemp(prefix="backprop-metrics-")
    for child in children:
        assert child.env is not None
        child.env[METRICS_FOLDER_VARIABLE] = folder
    if not made:
        yield
        return
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Supervisor:
    """Runs and watches the API and the workers until a stop signal (see module doc)."""

    def __init__(self, settings: Settings, *, host: str, port: int, workers: int) -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.settings = settings
        self.stopping = threading.Event()
        # Workers share the cores; the API's forward passes are small and run many at
        # once, where one BLAS thread each serves more requests (measured 1-row predict
        # 936-1,058 -> 1,260-1,340 req/s) than a pool contending with the workers.
        worker_env = blas_environment(settings, max(1, (os.cpu_count() or 1) // max(1, workers)))
        api_env = blas_environment(settings, 1)
        self.api = Child(
            "api",
            [
                sys.executable, "-m", "app.api.http_server",
                "--host", host, "--port", str(port), "--log-level", settings.log_level.lower(),
            ],
            env=api_env,
        )  # fmt: skip
        self.gc = Child("gc", [sys.executable, "-m", "app.cli", "gc"])
        self._next_gc = time.monotonic()
        self.workers = [
            Child(
                f"worker-{index + 1}", [sys.executable, "-m", "app.cli", "worker"], env=worker_env
            )
            for index in range(workers)
        ]

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: stopping the API and the workers", signal.strsignal(signum))
        self.stopping.set()

    def run(self) -> int:
        """Start everything, watch, and stop cleanly; returns the exit status."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            with metrics_folder([self.api, *self.workers]):  # removed once every child has stopped
                try:
                    for child in [self.api, *self.workers]:
                        child.start()
                    status = self._watch()
                finally:
                    self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def _watch(self) -> int:
        while not self.stopping.wait(CHECK_SECONDS):
            for child in [self.api, *self.workers]:
                self._tend(child)
            self._collect_garbage()
        return 0

    def _collect_garbage(self) -> None:
        """Start ``backprop gc`` when it is due and the previous one has ended. Each
        check reaps an ended run at once (no ``<defunct>`` child until the next is due)."""
        running = self.gc.process is not None and self.gc.exit_code() is None
        interval = self.settings.gc_interval_seconds
        if not interval or time.monotonic() < self._next_gc or running:
            return
        self._next_gc = time.monotonic() + interval
        self.gc.start()

    def _tend(self, child: Child) -> None:
        """Restart ``child`` if it exited, after a delay that grows while it dies young."""
        now = time.monotonic()
        if child.restart_at:
            if now >= child.restart_at:
                child.restart_at = 0.0
                child.start()
            return
        code = child.exit_code()
        if code is None:
            return
        lived = now - child.started
        folder = (child.env or {}).get(METRICS_FOLDER_VARIABLE)
        if child is self.api and folder and child.process is not None:
            # Its live gauges (model cache size) must stop counting; its counters stay.
            multiprocess.mark_process_dead(child.process.pid, folder)  # type: ignore[no-untyped-call]
        if lived >= HEALTHY_RUN_SECONDS:
            child.restart_delay = 0.0
        else:
            child.restart_delay = min(MAX_RESTART_DELAY, max(1.0, child.restart_delay * 2))
        log.warning(
            "%s exited with status %d after %.0f s; restarting in %.0f s",
            child.name, code, lived, child.restart_delay,
        )  # fmt: skip
        child.restart_at = now + child.restart_delay

    def _stop_all(self) -> None:
        everyone = [*self.workers, self.gc, self.api]
        children = [c for c in everyone if c.process and c.process.poll() is None]
        for child in children:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not stop in %.0f s; killing it", child.name, STOP_GRACE_SECONDS)
                child.process.kill()
                child.process.wait()
