"""What a worker sends its parent, once a second and at its end: the
samples since its last snapshot, in the sinks' own mergeable form
(counters' counts, rates' passes and totals, trends' HDR encodings and exact
extremes, gauges' fit sums), its new per-second series points, and its
scenarios' and errors' state. One JSON object per line.

Trends, counters and rates are sent as deltas and zeroed in place (the VUs
hold the sinks), so the parent merges each sample exactly once with the
sinks' own `merge`; a worker that dies leaves in the parent everything up to
its last snapshot. A gauge is not reset (its last value and extremes are
the worker's whole history); its fit sums are sent as the change since the
last snapshot, which merges exactly the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from loadaction.engine.runner import Run
from loadaction.metrics.registry import Registry, Tags
from loadaction.metrics.sinks import SINK_TYPES, CounterSink, GaugeSink, RateSink, TrendSink

# the parent records these itself: the workers' sums, once a second
PARENT_GAUGES = frozenset({"vus", "vus_max"})
_FIT = ("count", "total", "n", "st", "sv", "stt", "stv")


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _gauge_delta(sink: GaugeSink, sent: tuple[float, ...] | None) -> dict[str, Any]:
    now = tuple(getattr(sink, key) for key in _FIT)
    before = sent or (0,) * len(_FIT)
    d = dict(zip(_FIT, (a - b for a, b in zip(now, before))))
    return {"value": sink.value, "min": sink.lo, "max": sink.hi, "count": int(d["count"]),
            "fit": {"sum": d["total"], "last_t": sink.last_t, "t0": sink.t0, "n": int(d["n"]),
                    "st": d["st"], "sv": d["sv"], "stt": d["stt"], "stv": d["stv"]}}


class Snapshotter:
    """The worker side: takes what its Run recorded since the last snapshot."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._points_sent: dict[str, int] = {}
        self._gauges_sent: dict[tuple[str, Tags], tuple[float, ...]] = {}
        self._notices_sent = 0
        self._known: set[tuple[str, Tags]] = set()  # sent once: the parent has the sink

    def _empty(self, key: tuple[str, Tags], empty: bool) -> bool:
        """Nothing to send: no samples, and the parent already has the sink
        (an empty one counts: a `count==0` budget on it has data)."""
        if empty and key in self._known:
            return True
        self._known.add(key)
        return False

    def _metrics(self) -> list[list[Any]]:
        out: list[list[Any]] = []
        for metric in self.run.state.registry:
            if metric.name in PARENT_GAUGES:
                continue
            for tags, sink in metric.sinks.items():
                key = (metric.name, tags)
                if isinstance(sink, TrendSink):
                    if self._empty(key, not sink.count):
                        continue
                    data = ({"hdr": sink.encode(), "min": sink.min(), "max": sink.max()}
                            if sink.count else {"hdr": None})
                    sink.reset()
                elif isinstance(sink, CounterSink):
                    if self._empty(key, not sink.count):
                        continue
                    data = {"count": sink.count}
                    sink.count = 0
                elif isinstance(sink, RateSink):
                    if self._empty(key, not sink.total):
                        continue
                    data = {"passes": sink.passes, "fails": sink.total - sink.passes}
                    sink.passes = sink.total = 0
                else:
                    if self._empty(key, sink.count == (self._gauges_sent.get(key) or (0,))[0]):
                        continue
                    data = _gauge_delta(sink, self._gauges_sent.get(key))
                    self._gauges_sent[key] = tuple(getattr(sink, k) for k in _FIT)
                out.append([metric.name, metric.info.kind, [list(p) for p in tags], data])
        return out

    def _series(self) -> dict[str, list[Mapping[str, Any]]]:
        out = {}
        for name, points in self.run.state.series.points.items():
            sent = self._points_sent.get(name, 0)
            if len(points) > sent:
                out[name] = points[sent:]
                self._points_sent[name] = len(points)
        return out

    def snapshot(self) -> dict[str, Any]:
        state = self.run.state
        notices = state.notices[self._notices_sent:]
        self._notices_sent = len(state.notices)
        t0 = state.clock.t0
        return {
            "type": "snapshot",
            "metrics": self._metrics(),
            "series": self._series(),
            "scenarios": [{
                "name": r.scenario.name, "executor": r.scenario.executor.kind,
                "exec": r.scenario.exec, "start_time_s": r.scenario.start_time,
                "planned_s": ex.planned_duration(), "graceful_stop_s": r.scenario.graceful_stop,
                "iterations": r.iterations, "interrupted": r.interrupted, "dropped": r.dropped,
                "vus": r.active_vus, "vus_max": r.vus_max, "elapsed_s": r.elapsed(),
                "started": r.start_mono is not None, "ended": r.end_mono is not None,
                "end_s": None if r.end_mono is None else r.end_mono - t0,
            } for r, ex in self.run.scenarios],
            "errors": [[scenario, message, e.kind.value, e.count, e.first_seen - t0]
                       for (scenario, message), e in state.errors.entries.items()],
            "errors_dropped": state.errors.dropped,
            "notices": notices,
        }


def apply_metrics(registry: Registry, rows: list[list[Any]]) -> None:
    """The parent side: a snapshot's samples into the run's registry, with
    the sinks' own merge (so N workers' samples equal one process's)."""
    for name, kind, tags, data in rows:
        metric = registry.metrics.get(name)
        if metric is None or metric.info.kind != kind:
            continue  # same plan on both sides: cannot happen; never crash on it
        key = tuple(sorted((str(k), str(v)) for k, v in tags))
        metric.sink(key).merge(SINK_TYPES[kind].from_summary(data))  # type: ignore[arg-type]
