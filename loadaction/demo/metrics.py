"""`GET /metrics`: the demo target's own view of itself, in Prometheus's
text format, so a plan's `probes:` can judge it the way a staging's
exporter would be judged (memory that keeps growing, a pool that runs dry).

Each app gets its own CollectorRegistry (tests run many targets in one
process; prometheus_client's global REGISTRY would mix them). Request
counting is two dictionary updates and one histogram observation per
request; the pool, realtime and leak gauges are read only when scraped.
The endpoint needs no key, as exporters usually do not, and does not count
itself.

Series: `process_*` (ProcessCollector: resident and virtual memory, CPU,
open fds), `demo_http_requests_total{route,method,status}`,
`demo_http_request_duration_seconds{route}` (the realtime socket is counted
but not timed: its duration is the session's), `demo_db_pool_size`,
`demo_db_pool_in_use`, `demo_db_pool_waiting`, `demo_db_pool_saturation`
(the fullest share of the pool since the previous scrape), the counters
`demo_db_pool_waits_total` and `demo_db_pool_timeouts_total`,
`demo_realtime_sockets`, `demo_realtime_channels`,
`demo_realtime_subscriptions` and `demo_leaked_bytes`.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from loadaction.demo.faults import Leak
from loadaction.demo.pool import Pool
from loadaction.demo.realtime import RealtimeHub

PATH = "/metrics"
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Scraped(Collector):
    """Gauges read from the target's parts at scrape time (nothing on the hot path)."""

    def __init__(self, pool: Pool, hub: RealtimeHub, leak: Leak) -> None:
        self._pool, self._hub, self._leak = pool, hub, leak

    def collect(self) -> Iterator[Metric]:
        stats = self._pool.take_stats()
        yield GaugeMetricFamily("demo_db_pool_size", "Database pool slots", value=stats.size)
        yield GaugeMetricFamily("demo_db_pool_in_use", "Slots held by requests now",
                                value=stats.in_use)
        yield GaugeMetricFamily("demo_db_pool_waiting", "Requests queued for a slot now",
                                value=stats.waiting)
        yield GaugeMetricFamily(
            "demo_db_pool_saturation",
            "Peak slots in use since the previous scrape, as a share of the size (1 = full)",
            value=stats.peak_in_use / stats.size)
        yield CounterMetricFamily("demo_db_pool_waits", "Acquisitions that had to queue",
                                  value=stats.waits)
        yield CounterMetricFamily("demo_db_pool_timeouts",
                                  "Acquisitions that gave up (answered 503)", value=stats.timeouts)
        sockets, channels, bindings = self._hub.counts()
        yield GaugeMetricFamily("demo_realtime_sockets", "Connected Realtime sockets",
                                value=sockets)
        yield GaugeMetricFamily("demo_realtime_channels", "Joined Realtime channels",
                                value=channels)
        yield GaugeMetricFamily("demo_realtime_subscriptions",
                                "postgres_changes bindings of the joined channels", value=bindings)
        yield GaugeMetricFamily("demo_leaked_bytes", "Memory kept by the leak fault",
                                value=self._leak.held_bytes)


class DemoMetrics:
    """One target instance's registry and the request counters it feeds."""

    def __init__(self, pool: Pool, hub: RealtimeHub, leak: Leak) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.registry.register(_Scraped(pool, hub, leak))
        self._requests = Counter("demo_http_requests", "HTTP requests answered",
                                 ("route", "method", "status"), registry=self.registry)
        self._duration = Histogram("demo_http_request_duration_seconds",
                                   "Time from the request reaching the app to its answer",
                                   ("route",), buckets=_BUCKETS, registry=self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float | None) -> None:
        """Count one answered request; `seconds` None leaves it out of the histogram."""
        self._requests.labels(route, method, str(status)).inc()
        if seconds is not None:
            self._duration.labels(route).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of a scrape."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
