"""Prometheus text exposition, by hand: request counters, latency histograms, gauges.

Request metrics are per API process (label ``route`` is the path template, so ids do not
explode the series); the job, queue and worker gauges are read from the database at
scrape time and are the same in every process.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A gauge: (help text, {((label, value), ...): reading})
Gauge = tuple[str, Mapping[tuple[tuple[str, str], ...], float]]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Histogram:
    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect_left(BUCKETS, value)  # the first bucket with value <= bound
        if i < len(BUCKETS):
            self.counts[i] += 1
        self.count += 1
        self.sum += value


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


class Metrics:
    """Counters and histograms of HTTP requests in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str], _Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            histogram = self._latency.get((method, route))
            if histogram is None:
                histogram = self._latency[(method, route)] = _Histogram()
            histogram.observe(seconds)

    def render(self, gauges: Mapping[str, Gauge]) -> str:
        """The exposition text; ``gauges``: name -> (help, {label pairs: value})."""
        lines = [
            "# HELP backprop_http_requests_total HTTP requests handled by this process.",
            "# TYPE backprop_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), count in sorted(self._requests.items()):
                lines.append(
                    f"backprop_http_requests_total"
                    f"{_labels(method=method, route=route, status=status)} {count}"
                )
            lines += [
                "# HELP backprop_http_request_duration_seconds Time to answer a request.",
                "# TYPE backprop_http_request_duration_seconds histogram",
            ]
            for (method, route), hist in sorted(self._latency.items()):
                cumulative = 0
                for bound, count in zip(BUCKETS, hist.counts, strict=True):
                    cumulative += count
                    lines.append(
                        "backprop_http_request_duration_seconds_bucket"
                        f"{_labels(method=method, route=route, le=repr(bound))} {cumulative}"
                    )
                base = "backprop_http_request_duration_seconds"
                lines.append(
                    f"{base}_bucket{_labels(method=method, route=route, le='+Inf')} {hist.count}"
                )
                lines.append(f"{base}_sum{_labels(method=method, route=route)} {hist.sum:.6f}")
                lines.append(f"{base}_count{_labels(method=method, route=route)} {hist.count}")
        for name, (help_text, series) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            for label_pairs, value in series.items():
                labels = _labels(**dict(label_pairs)) if label_pairs else ""
                lines.append(f"{name}{labels} {value:g}")
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Times every HTTP request and counts it by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(
                scope["method"], template, status, time.perf_counter() - start
            )
