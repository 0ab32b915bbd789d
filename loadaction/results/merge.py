"""Merging the results documents of one run's shards into one document,
exactly: what `loadaction merge` writes.

k6 instances cannot be merged after the fact because their summaries keep
percentiles as computed values (k6 #763). Ours keep the samples' HDR
histograms, gauges their regression sums and rates their passes and fails,
so every sink is rebuilt from its summary and merged as if one process had
seen every sample; thresholds and regression budgets are then judged again
on the merged sinks, with the definitions the documents carry (a p(95) of
two shards is not any mix of their two p(95)s).

Shards are lined up on wall-clock time: each document's load began at its
`execution.start_at.began_at` (`--start-at`) or else at `started_at` plus
the setup, and the earliest of them is the merged run's time 0. Run-clock
times (series points, a gauge's last value, errors' first sighting, faults)
are shifted by each shard's offset from it.

The gauges of the process's own VUs (`vus`, `vus_max`) are the one
exception to merging as samples: each shard runs its share of the same VU
schedule, so the run's VUs are the shards' sum.

What is refused (PlanError, exit 2, one line naming the file): documents of
different plans (by name, by the plan file's digest, or by the digest of
every file the plan loaded: its includes, bases and data), profiles,
segment sequences or budgets, overlapping segments, segments that leave
part of 0..1 uncovered (unless `allow_partial`, then `merge.partial` says
which are missing), a capacity search's document, and two documents that
both ran chaos faults (their faults hit the target twice, and their
recovery verdicts each saw one segment's traffic: no merge of them is the
run the plan budgeted). Probes only observe, so the first document's (by
segment) are kept and a notice says which were left out.

Pure: documents in, a document out; reading and writing files is io.py's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loadaction import __version__
from loadaction.errors import PlanError, Source
from loadaction.metrics.registry import BUILTIN_METRICS, CHAOS_METRICS, MetricInfo, Registry
from loadaction.metrics.regressions import parse_regression
from loadaction.metrics.sinks import SINK_TYPES, GaugeSink, Sink, TrendSink
from loadaction.metrics.thresholds import VALID_AGGREGATIONS, parse_selector, parse_threshold
from loadaction.metrics.verdict import judge_all
from loadaction.plan.model import RegressionBudget, Threshold
from loadaction.plan.segments import (
    ExecutionSegment,
    SegmentSequence,
    filled_sequence,
    parse_segment,
    parse_sequence,
)
from loadaction.results.regression import regression_section
from loadaction.results.rows import threshold_row
from loadaction.results.schema import SCHEMA_VERSION

# Worst first: the merged run is as bad as its worst shard (a crash is a
# bug, then what was not carried out, then a budget's abort).
STATUS_SEVERITY = ("crashed", "failed", "cancelled", "capped", "aborted", "complete")


@dataclass(frozen=True, slots=True)
class Shard:
    """One input document: `name` is how errors and the `merge` block call it
    (its path, as given)."""

    name: str
    doc: Mapping[str, Any]
    segments: tuple[ExecutionSegment, ...]  # what it covers (several for a merged document)
    sequence: SegmentSequence
    began_at: datetime | None


def _parsed(name: str, what: str, text: Any, parse: Any) -> Any:
    try:
        return parse(str(text))
    except ValueError as exc:
        raise PlanError(f"{name}: execution {what} {text!r}: {exc}") from None


def _began_at(doc: Mapping[str, Any]) -> datetime | None:
    """When the shard's load began, by its host's clock."""
    start_at = (doc.get("execution") or {}).get("start_at")
    if isinstance(start_at, Mapping) and start_at.get("began_at"):
        return _instant(start_at["began_at"])
    started = _instant(doc.get("started_at"))
    if started is None:
        return None
    setup = (doc.get("timing") or {}).get("setup_s") or 0.0
    return started + timedelta(seconds=float(setup))


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def read_shard(name: str, doc: Mapping[str, Any]) -> Shard:
    """The shard's segment identity: the `execution` block (a document
    without one ran the whole test, `0:1` of `0,1`), or the segments a
    merged document covers (`merge.segments`)."""
    if doc.get("capacity") is not None:
        raise PlanError(f"{name}: a capacity search's results cannot be merged")
    execution = doc.get("execution") or {}
    merged = doc.get("merge") or {}
    if merged.get("segments"):
        segments = tuple(_parsed(name, "segment", s, parse_segment) for s in merged["segments"])
    else:
        segments = (_parsed(name, "segment", execution.get("segment") or "0:1", parse_segment),)
    if execution.get("sequence"):
        sequence = _parsed(name, "segment sequence", execution["sequence"], parse_sequence)
    else:
        sequence = filled_sequence(segments[0]) if len(segments) == 1 else parse_sequence("0,1")
    points = set(sequence.points)
    for segment in segments:
        if segment.start not in points or segment.end not in points:
            raise PlanError(f"{name}: execution segment {segment} is not in its sequence {sequence}")
    return Shard(name, doc, segments, sequence, _began_at(doc))


# ---------------------------------------------------------------- refusals

def _identity(shards: Sequence[Shard]) -> None:
    first = shards[0]
    plan = first.doc["plan"]
    # digests are compared with the first shard that has one: documents from
    # before a digest existed (absent or null) are not refused on it
    main, inputs = _digest_of(shards, "sha256"), _digest_of(shards, "inputs_sha256")
    for shard in shards[1:]:
        other = shard.doc["plan"]
        if other.get("name") != plan.get("name"):
            raise PlanError(f"{shard.name}: another plan ({other.get('name')!r}) than "
                            f"{first.name} ({plan.get('name')!r})")
        if main and other.get("sha256") and other["sha256"] != main.doc["plan"]["sha256"]:
            raise PlanError(f"{shard.name}: another version of plan {plan.get('name')!r} "
                            f"than {main.name} (its sha256 differs)")
        if (inputs and other.get("inputs_sha256")
                and other["inputs_sha256"] != inputs.doc["plan"]["inputs_sha256"]):
            raise PlanError(f"{shard.name}: loaded other plan inputs than {inputs.name} (an "
                            f"included, base or data file of plan {plan.get('name')!r} differs: "
                            f"its inputs_sha256)")
        if other.get("profile") != plan.get("profile"):
            raise PlanError(f"{shard.name}: profile {other.get('profile')!r}, not "
                            f"{plan.get('profile')!r} as in {first.name}")
        if shard.sequence != first.sequence:
            raise PlanError(f"{shard.name}: segment sequence {shard.sequence}, not "
                            f"{first.sequence} as in {first.name}")
        if _definitions(shard.doc) != _definitions(first.doc):
            raise PlanError(f"{shard.name}: other thresholds than {first.name} "
                            f"(another --scenario selection or plan?)")


def _digest_of(shards: Sequence[Shard], key: str) -> Shard | None:
    """The first shard whose `plan` carries the digest `key`."""
    return next((shard for shard in shards if shard.doc["plan"].get(key)), None)


def _definitions(doc: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((t["metric"], t["expression"], bool(t.get("optional")),
                   bool(t.get("abort_on_fail"))) for t in doc["thresholds"])


def coverage(shards: Sequence[Shard]) -> list[ExecutionSegment]:
    """The sequence's segments no shard covers; overlapping shards are refused."""
    owned = sorted(((s, shard) for shard in shards for s in shard.segments),
                   key=lambda pair: pair[0].start)
    for (a, one), (b, other) in zip(owned, owned[1:]):
        if b.start < a.end:
            raise PlanError(f"{other.name}: segment {b} overlaps {a} of {one.name}")
    covered = [s for s, _ in owned]
    return [s for s in shards[0].sequence.segments()
            if not any(c.start <= s.start and s.end <= c.end for c in covered)]


# ---------------------------------------------------------------- the merge

def merge_documents(named: Sequence[tuple[str, Mapping[str, Any]]], *,
                    baselines: Sequence[Mapping[str, Any]] = (),
                    allow_partial: bool = False) -> dict[str, Any]:
    """One document from the shards' (`(name, document)` pairs, already
    checked against the schema); `baselines` judge the plan's regression
    budgets as `run --baseline` does. PlanError when they cannot be merged."""
    if not named:
        raise PlanError("no results documents to merge")
    shards = sorted((read_shard(name, doc) for name, doc in named),
                    key=lambda s: s.segments[0].start)
    _identity(shards)
    missing = coverage(shards)
    sequence = shards[0].sequence
    if missing and not allow_partial:
        raise PlanError(f"partial merge refused: segments {', '.join(map(str, missing))} of "
                        f"{sequence} missing (no results given for them; --allow-partial "
                        f"merges what there is)")
    chaos = [s for s in shards if s.doc.get("chaos")]
    if len(chaos) > 1:
        raise PlanError(f"{chaos[1].name}: ran chaos faults as {chaos[0].name} did: the faults "
                        f"hit the target once per shard; run them in one shard only")

    known = [s.began_at for s in shards if s.began_at is not None]
    base = min(known) if known else None
    offsets = [(s.began_at - base).total_seconds() if base and s.began_at else 0.0
               for s in shards]
    duration = max(o + _load_s(s.doc) for s, o in zip(shards, offsets))
    first = shards[0].doc
    notices = list(dict.fromkeys(n for s in shards for n in s.doc.get("notices") or ()))

    doc: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "tool": {"name": "loadaction", "version": __version__},
        "plan": dict(first["plan"]),
    }
    for key in ("sha256", "inputs_sha256"):
        carrier = _digest_of(shards, key)
        if carrier is not None:  # equal in every shard that has one (_identity)
            doc["plan"][key] = carrier.doc["plan"][key]
    times = [(s.doc.get("started_at"), s.doc.get("ended_at")) for s in shards]
    started = [t for t, _ in times if _instant(t) is not None]
    ended = [t for _, t in times if _instant(t) is not None]
    if started:
        doc["started_at"] = min(started, key=_instant)  # type: ignore[arg-type]
    if ended:
        doc["ended_at"] = max(ended, key=_instant)  # type: ignore[arg-type]
    worst = min(shards, key=lambda s: STATUS_SEVERITY.index(s.doc["status"]))
    reason = worst.doc.get("status_reason")
    doc.update({
        "duration_s": round(duration, 3),
        "timing": _timing(shards, duration),
        "status": worst.doc["status"],
        "status_reason": f"{worst.name}: {reason}" if reason and len(shards) > 1 else reason,
        "environment": dict(first.get("environment") or {}),
        "scenarios": _scenarios(shards),
        "metrics": _metrics(shards, offsets, duration),
        "series": _series(shards, offsets),
        "checks": _checks(shards),
        "errors": _errors(shards, offsets),
    })
    covered = sorted((seg for s in shards for seg in s.segments), key=lambda seg: seg.start)
    span = ExecutionSegment(covered[0].start, covered[-1].end)
    if not missing or all(not (span.start <= m.start < span.end) for m in missing):
        doc["execution"] = {"segment": str(span), "sequence": str(sequence),
                            "workers": sum((s.doc.get("execution") or {}).get("workers", 1)
                                           for s in shards)}
    doc["merge"] = {
        "shards": [{"file": s.name, "segment": ", ".join(map(str, s.segments)),
                    "status": s.doc["status"], "started_at": s.doc.get("started_at"),
                    "offset_s": round(o, 3)} for s, o in zip(shards, offsets)],
        "sequence": str(sequence),
        "segments": [str(seg) for seg in covered],
        "missing": [str(m) for m in missing],
        "partial": bool(missing),
    }
    if chaos:
        doc["chaos"] = _shift_chaos(chaos[0].doc["chaos"], offsets[shards.index(chaos[0])])
    probed = [(s, o) for s, o in zip(shards, offsets) if s.doc.get("probes")]
    if probed:
        doc["probes"] = _shift_probes(probed[0][0].doc["probes"], probed[0][1])
        if len(probed) > 1:
            notices.append(f"probes of {', '.join(s.name for s, _ in probed[1:])} left out: "
                           f"those of {probed[0][0].name} are shown")
    doc["thresholds"] = _judge(doc, _thresholds(first))
    budgets = _budgets(shards)
    if any(s.doc.get("regressions") for s in shards) and not baselines:
        notices.append("the shards' regression verdicts judged one segment each and are left "
                       "out: give the baselines to the merge (--baseline) to judge them")
    doc["notices"] = notices
    if baselines:
        doc.update(regression_section(doc, budgets, baselines))
    return doc


def _load_s(doc: Mapping[str, Any]) -> float:
    return float((doc.get("timing") or {}).get("load_s", doc["duration_s"]))


def _timing(shards: Sequence[Shard], load_s: float) -> dict[str, Any]:
    def longest(key: str) -> float | None:
        values = [t[key] for s in shards if (t := s.doc.get("timing")) and t.get(key) is not None]
        return max(values) if values else None
    return {"setup_s": longest("setup_s"), "load_s": round(load_s, 3),
            "teardown_s": longest("teardown_s")}


def _scenarios(shards: Sequence[Shard]) -> list[dict[str, Any]]:
    """Summed counts by scenario name; the plan's own values from the first
    that has them (a segment may run none of a scenario's VUs)."""
    rows: dict[str, dict[str, Any]] = {}
    for shard in shards:
        for s in shard.doc["scenarios"]:
            row = rows.get(s["name"])
            if row is None:
                rows[s["name"]] = dict(s)
                continue
            for key in ("iterations", "interrupted_iterations", "dropped_iterations", "vus_max"):
                if key in s:
                    row[key] = row.get(key, 0) + s[key]
            if s.get("planned_duration_s") is not None:
                row["planned_duration_s"] = max(row.get("planned_duration_s") or 0.0,
                                                s["planned_duration_s"])
    return list(rows.values())


# Gauges of this process's own VUs: every shard runs its share of the same
# schedule, side by side when started together, so the run's VUs at any time
# are the shards' sum, not any one shard's sample.
SUMMED_GAUGES = frozenset({"vus", "vus_max"})


def _add_up(into: GaugeSink, other: GaugeSink) -> None:
    """`into` += `other` as two gauges read at the same ticks: values,
    extremes and means add; the slope is not kept (no common fit)."""
    if not other.count:
        return
    if not into.count:
        into.lo = into.hi = 0.0
    count = max(into.count, other.count)
    mean = (into.avg() or 0.0) + (other.avg() or 0.0)
    into.value += other.value
    into.lo += other.lo
    into.hi += other.hi
    into.count, into.total = count, mean * count
    into.last_t = into.t0 = None
    into.n = 0
    into.st = into.sv = into.stt = into.stv = 0.0


def _combine(name: str, into: Sink, other: Sink) -> None:
    if name in SUMMED_GAUGES and isinstance(into, GaugeSink) and isinstance(other, GaugeSink):
        _add_up(into, other)
    else:
        into.merge(other)  # type: ignore[arg-type]


def _sink(kind: str, summary: Mapping[str, Any], offset: float) -> Sink:
    sink = SINK_TYPES[kind].from_summary(dict(summary))
    if isinstance(sink, GaugeSink) and offset:  # onto the merged clock: last = latest by time
        if sink.last_t is not None:
            sink.last_t += offset
        if sink.t0 is not None:
            sink.t0 += offset  # the sums are centred on t0, so they move with it
    return sink


def _metrics(shards: Sequence[Shard], offsets: Sequence[float],
             duration: float) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    merged: dict[str, tuple[Sink | None, dict[tuple[tuple[str, str], ...], Sink]]] = {}
    for shard, offset in zip(shards, offsets):
        for name, entry in shard.doc["metrics"].items():
            kind = entry["type"]
            if name not in out:
                out[name] = {"type": kind, "contains": entry.get("contains", "default")}
                merged[name] = (None, {})
            elif out[name]["type"] != kind:
                raise PlanError(f"{shard.name}: metric {name!r} is a {kind}, "
                                f"a {out[name]['type']} in {shards[0].name}")
            total, parts = merged[name]
            if entry.get("total") is not None:
                sink = _sink(kind, entry["total"], offset)
                if total is None:
                    total = sink
                else:
                    _combine(name, total, sink)
            for row in entry.get("by_tags") or ():
                key = tuple(sorted(row["tags"].items()))
                sink = _sink(kind, row["sink"], offset)
                if key in parts:
                    _combine(name, parts[key], sink)
                else:
                    parts[key] = sink
            merged[name] = (total, parts)
    for name, (total, parts) in merged.items():
        out[name]["total"] = total.summary(duration) if total is not None else None
        out[name]["by_tags"] = [{"tags": dict(tags), "sink": sink.summary(duration)}
                                for tags, sink in parts.items()]
    return out


def _series(shards: Sequence[Shard], offsets: Sequence[float]) -> dict[str, Any]:
    """Points of the same interval (by wall-clock time) summed, their
    latencies from the merged histograms; one document's series is its own."""
    interval = float((shards[0].doc.get("series") or {}).get("interval_s") or 1.0)
    if len(shards) == 1:
        return {"interval_s": interval,
                "scenarios": dict((shards[0].doc.get("series") or {}).get("scenarios") or {})}
    buckets: dict[str, dict[int, list[tuple[float, Mapping[str, Any]]]]] = {}
    for shard, offset in zip(shards, offsets):
        for name, points in ((shard.doc.get("series") or {}).get("scenarios") or {}).items():
            by_key = buckets.setdefault(name, {})
            for point in points:
                t = point["t"] + offset
                by_key.setdefault(math.floor(t / interval + 0.5), []).append((t, point))
    return {"interval_s": interval,
            "scenarios": {name: [merged_point(by_key[k]) for k in sorted(by_key)]
                          for name, by_key in buckets.items()}}


def merged_point(parts: Sequence[tuple[float, Mapping[str, Any]]]) -> dict[str, Any]:
    """One per-second series point from the same second of several processes
    (shards here, workers in loadaction/workers): durations through their
    HDR histograms, so a second's percentiles are exact, counts summed."""
    durations = TrendSink()
    for _, p in parts:
        if p.get("hdr"):
            durations.merge(TrendSink.from_summary({"hdr": p["hdr"], "max": p.get("max")}))
    has = durations.count > 0
    p50, p95, p99 = durations.percentiles((50, 95, 99)) if has else (None, None, None)
    return {
        "t": round(max(t for t, _ in parts), 3),
        **{key: sum(p.get(key, 0) for _, p in parts)
           for key in ("reqs", "failed", "iterations", "vus")},
        "p50": p50, "p95": p95, "p99": p99,
        "max": durations.max() if has else None,
        "hdr": durations.encode() if has else None,
    }


def _checks(shards: Sequence[Shard]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for shard in shards:
        for c in shard.doc["checks"]:
            key = (c["name"], c.get("scenario", ""), c.get("group", ""))
            row = rows.setdefault(key, {"name": key[0], "scenario": key[1], "group": key[2],
                                        "passes": 0, "fails": 0})
            row["passes"] += c["passes"]
            row["fails"] += c["fails"]
    return list(rows.values())


def _errors(shards: Sequence[Shard], offsets: Sequence[float]) -> list[dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for shard, offset in zip(shards, offsets):
        for e in shard.doc["errors"]:
            key = (e["message"], e.get("kind"), e.get("scenario"))
            seen = e.get("first_seen_s")
            seen = None if seen is None else round(seen + offset, 3)
            row = rows.get(key)
            if row is None:
                rows[key] = {**e, "first_seen_s": seen}
                continue
            row["count"] += e["count"]
            if seen is not None and (row.get("first_seen_s") is None or seen < row["first_seen_s"]):
                row["first_seen_s"] = seen
    return sorted(rows.values(), key=lambda e: -e["count"])


_FAULT_TIMES = ("planned_at_s", "planned_end_s", "started_at_s", "ended_at_s", "rolled_back_at_s")


def _shift_chaos(chaos: Mapping[str, Any], offset: float) -> dict[str, Any]:
    faults = [{**f, **{k: round(f[k] + offset, 3) for k in _FAULT_TIMES if f.get(k) is not None}}
              for f in chaos.get("faults") or ()]
    return {**chaos, "faults": faults}


def _shift_probes(probes: Mapping[str, Any], offset: float) -> dict[str, Any]:
    series = [{**s, "points": [[round(t + offset, 3), v] for t, v in s["points"]]}
              for s in probes.get("series") or ()]
    return {**probes, "series": series}


# ---------------------------------------------------------------- budgets

def _source(row: Mapping[str, Any]) -> Source:
    source = row.get("source") or {}
    return Source(str(source.get("file", "?")), int(source.get("line", 1)))


def _thresholds(doc: Mapping[str, Any]) -> tuple[Threshold, ...]:
    """The plan's thresholds as the document states them."""
    out = []
    for row in doc["thresholds"]:
        metric, tags = parse_selector(row["metric"])
        out.append(Threshold(metric, tags, parse_threshold(row["expression"]), _source(row),
                             abort_on_fail=bool(row.get("abort_on_fail")),
                             optional=bool(row.get("optional")),
                             min_samples=row.get("min_samples")))
    return tuple(out)


def _judge(doc: Mapping[str, Any], thresholds: Sequence[Threshold]) -> list[dict[str, Any]]:
    """The thresholds judged by the run's own evaluator on a registry of the
    merged sinks; a metric no shard measured is `no data`, as in a run."""
    custom = {name: MetricInfo(entry["type"], entry.get("contains", "default"))
              for name, entry in doc["metrics"].items()}
    for t in thresholds:
        if t.metric not in custom and t.metric not in BUILTIN_METRICS:
            custom[t.metric] = CHAOS_METRICS.get(t.metric) or MetricInfo(
                next(k for k, aggs in VALID_AGGREGATIONS.items() if t.expr.aggregation in aggs))
    registry = Registry(custom)
    for name, entry in doc["metrics"].items():
        sinks = registry[name].sinks
        for row in entry["by_tags"]:
            sinks[tuple(sorted(row["tags"].items()))] = SINK_TYPES[entry["type"]].from_summary(
                row["sink"])
    return [threshold_row(r) for r in judge_all(tuple(thresholds), registry,
                                                float(doc["duration_s"]))]


def _budgets(shards: Sequence[Shard]) -> list[RegressionBudget]:
    """The plan's regression budgets: `plan.regressions` (every document
    written since merging exists), else a shard's judged `regressions`."""
    rows: Sequence[Mapping[str, Any]] = ()
    for shard in shards:
        rows = shard.doc["plan"].get("regressions") or shard.doc.get("regressions") or ()
        if rows:
            break
    out = []
    for row in rows:
        metric, tags = parse_selector(row["metric"])
        out.append(RegressionBudget(metric, tags, parse_regression(row["expression"]),
                                    _source(row), required=bool(row.get("required"))))
    return out

