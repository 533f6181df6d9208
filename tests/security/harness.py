"""A real ``backprop serve`` under attack, measured: the API child's peak memory (VmHWM
from /proc, reset before each attack through clear_refs), /healthz answers timed by a
probe thread while the attack runs, and the server's log (no traceback allowed).

Used by tests/security (asserting the bounds) and bench/hostile.py (printing them).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.processes import serve_on_sqlite

STARTED_LINE = re.compile(r"started (\S+) \(pid (\d+)\)$", re.MULTILINE)
TRACEBACK = "Traceback (most recent call last)"
# What the attacks below assume of the server (small timeouts keep the slow-client
# attacks short; the quota leaves room for the other attacks' few stored bytes).
ATTACK_SETTINGS = {
    "BACKPROP_HEADER_TIMEOUT_SECONDS": "2",
    "BACKPROP_BODY_TIMEOUT_SECONDS": "2",
    "BACKPROP_MAX_OWNER_BYTES": str(10 * 1024 * 1024),
}


@dataclass
class Target:
    url: str
    key: str
    log_path: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api_pid(self) -> int:
        """The API child the supervisor started last."""
        pids = [int(pid) for name, pid in STARTED_LINE.findall(self.logs()) if name == "api"]
        assert pids, f"no API child in the log:\n{self.logs()}"
        return pids[-1]

    def _status_kib(self, field_name: str) -> int:
        text = Path(f"/proc/{self.api_pid()}/status").read_text()
        match = re.search(rf"^{field_name}:\s+(\d+) kB$", text, re.MULTILINE)
        assert match, f"{field_name} not in /proc status"
        return int(match.group(1))

    def reset_peak(self) -> None:
        """Start the API's peak-RSS count again from its current RSS."""
        Path(f"/proc/{self.api_pid()}/clear_refs").write_text("5")

    def peak_mib(self) -> float:
        return self._status_kib("VmHWM") / 1024


@contextmanager
def serve(tmp_path: Path, *, workers: int = 0, **settings: str) -> Iterator[Target]:
    """``backprop serve`` on a fresh SQLite file with ``settings`` (BACKPROP_* names)."""
    data = {"BACKPROP_DATA_DIR": str(tmp_path / "data"), **settings}
    with serve_on_sqlite(tmp_path, workers=workers, timeout=120, settings=data) as served:
        yield Target(served.url, served.key, served.log)


@dataclass
class HealthProbe:
    """GET /healthz every ``interval`` s in a thread: (sent, answered, status) of each."""

    url: str
    interval: float = 0.05
    answers: list[tuple[float, float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append((sent, time.monotonic(), status))
                self._stop.wait(self.interval)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def during(self, start: float, end: float) -> list[float]:
        """Latencies (s) of the 200 answers sent and received between start and end."""
        return [a - s for s, a, status in self.answers if status == 200 and start <= s and a <= end]

    def worst(self) -> float:
        return max((a - s for s, a, _ in self.answers), default=0.0)


@dataclass(frozen=True)
class Outcome:
    name: str
    result: str
    seconds: float
    peak_mib: float
    health_during: int  # /healthz answers received while the attack ran
    health_worst_ms: float  # the slowest /healthz answer from the attack's start to its end


def run_attack(target: Target, name: str, attack: Callable[[Target], str]) -> Outcome:
    """Run one attack with the health probe going; its result and the measurements."""
    target.reset_peak()
    with HealthProbe(target.url) as probe:
        start = time.monotonic()
        result = attack(target)
        end = time.monotonic()
        time.sleep(0.2)  # one more answer after the attack, when it was too short for one
    latencies = probe.during(start, end)
    return Outcome(
        name=name,
        result=result,
        seconds=end - start,
        peak_mib=target.peak_mib(),
        health_during=len(latencies),
        health_worst_ms=1000 * probe.worst(),
    )
