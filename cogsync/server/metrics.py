"""Prometheus metrics of `cogsync serve` (``GET /metrics``, optionally on ``--metrics-port``).

Each server has its own `ServerMetrics` with its own ``CollectorRegistry`` (several servers
can run in one process). Request counters and latency histograms are fed by the access
middleware; gauges (connections, subscriptions, identities, database size) and the
notification counters are read from the server when scraped, through `MetricSources`.

| metric | type | labels |
| --- | --- | --- |
| ``cogsync_requests_total`` | counter | operation, outcome |
| ``cogsync_request_duration_seconds`` | histogram | operation |
| ``cogsync_push_batches_total`` / ``cogsync_push_records_total`` | counter | |
| ``cogsync_conflicts_total`` | counter | |
| ``cogsync_open_connections`` / ``cogsync_open_subscriptions`` | gauge | |
| ``cogsync_notifications_sent_total`` / ``..._dropped_total`` | counter | |
| ``cogsync_identities`` / ``cogsync_database_bytes`` | gauge | |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["MetricSources", "ServerMetrics"]


def _zero() -> int:
    return 0


@dataclass
class MetricSources:
    """Callables read at scrape time (each returns a current value)."""

    open_connections: Callable[[], int] = _zero
    open_subscriptions: Callable[[], int] = _zero
    notifications_sent: Callable[[], int] = _zero
    notifications_dropped: Callable[[], int] = _zero
    identities: Callable[[], int] = _zero
    database_bytes: Callable[[], int] = _zero


class _Snapshot(Collector):
    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        gauges = (
            (
                "cogsync_open_connections",
                "Open real-time WebSocket connections",
                s.open_connections,
            ),
            ("cogsync_open_subscriptions", "Open real-time subscriptions", s.open_subscriptions),
            ("cogsync_identities", "Identities in the pool", s.identities),
            ("cogsync_database_bytes", "Bytes of the data files on disk", s.database_bytes),
        )
        for name, doc, read in gauges:
            yield GaugeMetricFamily(name, doc, value=read())
        yield CounterMetricFamily(
            "cogsync_notifications_sent",
            "Change notifications queued",
            value=s.notifications_sent(),
        )
        yield CounterMetricFamily(
            "cogsync_notifications_dropped",
            "Change notifications a stalled subscriber lost",
            value=s.notifications_dropped(),
        )


class ServerMetrics:
    """The metrics of one server, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sources = MetricSources()
        self._requests = Counter(
            "cogsync_requests",
            "Requests by operation and outcome (ok or the error type)",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "cogsync_request_duration_seconds",
            "Request latency by operation",
            ["operation"],
            registry=self.registry,
        )
        self._push_batches = Counter(
            "cogsync_push_batches", "Push batches accepted", registry=self.registry
        )
        self._push_records = Counter(
            "cogsync_push_records", "Records in accepted push batches", registry=self.registry
        )
        self._conflicts = Counter(
            "cogsync_conflicts", "Pushes refused as conflicts", registry=self.registry
        )
        self.registry.register(_Snapshot(self.sources))

    def observe_request(self, operation: str, outcome: str, seconds: float) -> None:
        """Count one finished request."""
        self._requests.labels(operation, outcome).inc()
        self._latency.labels(operation).observe(seconds)
        if outcome == "ConflictException":
            self._conflicts.inc()

    def push_accepted(self, records: int) -> None:
        """Count one accepted push batch of ``records`` records."""
        self._push_batches.inc()
        self._push_records.inc(records)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def routes(self) -> list[web.RouteDef]:
        """``GET /metrics``."""

        async def metrics(_request: web.Request) -> web.Response:
            response = web.Response(body=self.render())
            response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
            return response

        return [web.get("/metrics", metrics)]
