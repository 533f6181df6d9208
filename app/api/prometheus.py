"""Prometheus metrics through ``prometheus-client``: requests, latencies, the model cache.

Request counters and latency histograms (label ``route`` is the path template, so ids do
not explode the series) and the predict model cache's size, hits and misses are kept by
the library; the workers' blob cache counters are :mod:`app.jobs.cache_metrics`'s (summed
here in multiprocess mode). The job, queue and worker gauges are read from the database
at scrape time (:func:`database_gauges`) and are the same whichever process answers.

Several API processes: when ``PROMETHEUS_MULTIPROC_DIR`` names a folder at process start
(``backprop serve`` creates one for its API process and removes it at exit), every
process writes its values to files there and any process's ``/metrics`` sums them all
(prometheus-client's multiprocess mode): counts do not depend on which process a load
balancer picked, nor restart from zero when an API process is replaced. Without it, each
app keeps its own registry (tests build many apps in one process).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.services.model_cache import CachedModel, ModelCache

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# The same series in one process as in several: multiprocess mode writes no *_created.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class _Families:
    """A collector of metric families already read (the database gauges of one scrape)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


class Metrics:
    """This process's request and model-cache metrics, and the exposition of a scrape."""

    def __init__(self) -> None:
        # Read at start, like prometheus-client itself reads it when it is imported.
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_ENV) or None
        registry = None if self.multiprocess_dir else CollectorRegistry()
        self._registry = registry
        # (method, route, status) -> its counter and histogram children
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.requests = Counter(
            "backprop_http_requests",
            "HTTP requests handled.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "backprop_http_request_duration_seconds",
            "Time to answer a request.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.cache_size = Gauge(
            "backprop_model_cache_size",
            "Models loaded for predict (all API processes alive).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.cache_hits = Gauge(
            "backprop_model_cache_hits",
            "Predict lookups served from the cache (counter-like).",
            registry=registry,
            multiprocess_mode="sum",
        )
        self.cache_misses = Gauge(
            "backprop_model_cache_misses",
            "Predict lookups that missed the cache (counter-like).",
            registry=registry,
            multiprocess_mode="sum",
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:  # labels() costs more than the count itself: once per series
            series = self._series[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        count, latency = series
        count.inc()
        latency.observe(seconds)

    def render(self, gauges: Iterable[Metric]) -> bytes:
        """The exposition text: every process's metrics (or this app's), then ``gauges``."""
        registry = CollectorRegistry()
        if self.multiprocess_dir:
            MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            assert self._registry is not None
            registry.register(self._registry)
        registry.register(_Families(gauges))
        return prometheus_client.generate_latest(registry)

    def close(self) -> None:
        """At process exit: drop this process's share of the live gauges (the cache size)."""
        if self.multiprocess_dir:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def database_gauges(jobs_by_status: Mapping[str, int], live_workers: int) -> list[Metric]:
    """The job, queue and worker gauges of one scrape, from counts read in the database."""
    jobs = GaugeMetricFamily("backprop_jobs", "Jobs by status.", labels=["status"])
    for status, count in jobs_by_status.items():
        jobs.add_metric([status], count)
    return [
        jobs,
        GaugeMetricFamily(
            "backprop_queue_depth", "Jobs waiting for a worker.", value=jobs_by_status["queued"]
        ),
        GaugeMetricFamily(
            "backprop_workers", "Workers with a heartbeat in the last 30 s.", value=live_workers
        ),
    ]


class MeteredModelCache(ModelCache):
    """The predict model cache, reporting its size, hits and misses to ``metrics``."""

    def __init__(self, size: int, metrics: Metrics) -> None:
        super().__init__(size)
        self._metrics = metrics

    def get(self, model_id: str) -> CachedModel | None:
        entry = super().get(model_id)
        (self._metrics.cache_misses if entry is None else self._metrics.cache_hits).inc()
        return entry

    def put(self, model_id: str, entry: CachedModel) -> None:
        super().put(model_id, entry)
        self._metrics.cache_size.set(len(self))

    def drop(self, model_id: str) -> None:
        super().drop(model_id)
        self._metrics.cache_size.set(len(self))


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
