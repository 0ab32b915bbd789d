"""All metrics of a run, each split by tag set.

A tag set is a sorted tuple of (key, value) pairs. Sinks are created on
first use and never removed; the number of tag sets is bounded by the plan
(scenarios x request names x statuses), not by the run's length. Sub-metrics
(`http_req_duration{scenario:a}`) are merged from the matching tag sets when
asked, so thresholds on any tag combination need no set-up before the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from loadaction.metrics.sinks import SINK_TYPES, Sink

Tags = tuple[tuple[str, str], ...]
Contains = Literal["time", "data", "default"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    kind: str  # counter | rate | trend | gauge
    contains: Contains = "default"


BUILTIN_METRICS: Mapping[str, MetricInfo] = {
    "http_reqs": MetricInfo("counter"),
    "http_req_duration": MetricInfo("trend", "time"),
    "http_req_blocked": MetricInfo("trend", "time"),
    "http_req_connecting": MetricInfo("trend", "time"),
    # k6's breakdown of http_req_duration (sending + waiting + receiving) and
    # the TLS handshake (0 on a reused connection or over plain HTTP)
    "http_req_tls_handshaking": MetricInfo("trend", "time"),
    "http_req_sending": MetricInfo("trend", "time"),
    "http_req_waiting": MetricInfo("trend", "time"),
    "http_req_receiving": MetricInfo("trend", "time"),
    "http_req_failed": MetricInfo("rate"),
    "iterations": MetricInfo("counter"),
    "iteration_duration": MetricInfo("trend", "time"),
    "iteration_start_lateness": MetricInfo("trend", "time"),
    "dropped_iterations": MetricInfo("counter"),
    "group_duration": MetricInfo("trend", "time"),
    "vus": MetricInfo("gauge"),
    "vus_max": MetricInfo("gauge"),
    "checks": MetricInfo("rate"),
    "data_sent": MetricInfo("counter", "data"),
    "data_received": MetricInfo("counter", "data"),
    # WebSocket sessions, with k6's names and meanings
    "ws_connecting": MetricInfo("trend", "time"),
    "ws_sessions": MetricInfo("counter"),
    "ws_session_duration": MetricInfo("trend", "time"),
    "ws_msgs_sent": MetricInfo("counter"),
    "ws_msgs_received": MetricInfo("counter"),
    "ws_ping": MetricInfo("trend", "time"),
    "ws_heartbeat_duration": MetricInfo("trend", "time"),
    "ws_errors": MetricInfo("counter"),
    # realtime updates: a write's response to the subscriber's matching message
    "realtime_update_latency": MetricInfo("trend", "time"),
    "realtime_updates_missed": MetricInfo("counter"),
}


CHAOS_METRICS: Mapping[str, MetricInfo] = {
    "chaos_aborted": MetricInfo("counter"),
    "chaos_duplicates": MetricInfo("counter"),
    "chaos_duplicate_mismatch": MetricInfo("counter"),
    "chaos_reordered": MetricInfo("counter"),
    "chaos_tamper_rejected": MetricInfo("counter"),
    "chaos_tamper_accepted": MetricInfo("counter"),
    "chaos_retries": MetricInfo("counter"),
    "chaos_idempotency_violations": MetricInfo("counter"),
}
"""What client-side faults count; they exist (and budgets may name them) when a plan has chaos."""


@dataclass(slots=True)
class Metric:
    name: str
    info: MetricInfo
    sinks: dict[Tags, Sink] = field(default_factory=dict)

    def sink(self, tags: Tags) -> Sink:
        sink = self.sinks.get(tags)
        if sink is None:
            sink = self.sinks[tags] = SINK_TYPES[self.info.kind]()
        return sink


# Tags whose value lists several labels, comma-separated: a sample sent while
# two faults were active has `phase: during:a,during:b`, and a selector
# `{phase:during:a}` matches it (it was sent while `a` was active).
LIST_TAGS = frozenset({"phase"})


def matches(tags: Tags, selector: Tags) -> bool:
    """True when every selector pair is among the tags (or, for a list tag,
    its value is one of the tag's labels)."""
    for pair in selector:
        if pair in tags:
            continue
        key, wanted = pair
        if key not in LIST_TAGS:
            return False
        if not any(k == key and wanted in v.split(",") for k, v in tags):
            return False
    return True


class Registry:
    """The run's metrics; built-ins exist from the start, custom ones as declared."""

    def __init__(self, custom: Mapping[str, MetricInfo] = {}) -> None:
        self.metrics: dict[str, Metric] = {
            name: Metric(name, info) for name, info in {**BUILTIN_METRICS, **custom}.items()
        }

    def __getitem__(self, name: str) -> Metric:
        return self.metrics[name]

    def __iter__(self) -> Iterator[Metric]:
        return iter(self.metrics.values())

    def sink(self, name: str, tags: Tags) -> Sink:
        return self.metrics[name].sink(tags)

    def add(self, name: str, value: float, tags: Tags) -> None:
        self.metrics[name].sink(tags).add(value)

    def select(self, name: str, selector: Tags = ()) -> Sink | None:
        """The merge of every tag set matching `selector`; None when none has data."""
        metric = self.metrics[name]
        merged: Sink | None = None
        for tags, sink in metric.sinks.items():
            if matches(tags, selector):
                if merged is None:
                    merged = SINK_TYPES[metric.info.kind]()
                merged.merge(sink)  # type: ignore[arg-type]
        return merged
