"""The results document (docs/results-schema.md) built from a finished run.

The one writer of the document's shape: it reads the run's typed snapshot
(`RunOutcome`) and the plugins' contributions, never live engine state;
everything downstream (terminal, Markdown, JUnit, GitHub) reads the document.
"""

from __future__ import annotations

import os
import platform
from datetime import timedelta
from collections.abc import Mapping, Sequence
from typing import Any

from loadaction import __version__
from loadaction.chaos.plugin import ChaosReport
from loadaction.chaos.timeline import FaultRecord
from loadaction.engine.runner import RunOutcome
from loadaction.engine.start_at import StartRecord
from loadaction.metrics.registry import Registry
from loadaction.probes.report import ProbesReport
from loadaction.results.regression import regression_section
from loadaction.results.rows import budget_row
from loadaction.results.rows import source_row as _source
from loadaction.results.rows import threshold_row as _threshold

RESULTS_SCHEMA = 1


def _environment() -> dict[str, Any]:
    server, repo, run_id = (os.environ.get(k) for k in
                            ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ci": bool(os.environ.get("CI")),
        "github_run_url": f"{server}/{repo}/actions/runs/{run_id}" if server and repo and run_id else None,
        # what a later run compared with this one names it by ("against main")
        "ref": os.environ.get("GITHUB_REF_NAME") or None,
        "sha": os.environ.get("GITHUB_SHA") or None,
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _metrics(registry: Registry, duration: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric in registry:
        if not metric.sinks:
            continue
        total = registry.select(metric.name)
        out[metric.name] = {
            "type": metric.info.kind,
            "contains": metric.info.contains,
            "total": total.summary(duration) if total is not None else None,
            "by_tags": [{"tags": dict(tags), "sink": sink.summary(duration)}
                        for tags, sink in metric.sinks.items()],
        }
    return out


def _checks(registry: Registry) -> list[dict[str, Any]]:
    """One row per check, scenario and group; chaos phases are summed (the
    per-phase view is `chaos.phases`)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for tags, sink in registry["checks"].sinks.items():
        t = dict(tags)
        key = (t.get("check", ""), t.get("scenario", ""), t.get("group", ""))
        row = rows.setdefault(key, {"name": key[0], "scenario": key[1], "group": key[2],
                                    "passes": 0, "fails": 0})
        row["passes"] += sink.passes
        row["fails"] += sink.total - sink.passes
    return list(rows.values())


def _fault(record: FaultRecord) -> dict[str, Any]:
    f = record.fault
    return {
        "name": f.name, "kind": f.action.kind, "anchor": f.anchor,
        "at_s": _round(f.at), "duration_s": _round(f.duration), "source": _source(f.source),
        "planned_at_s": _round(record.planned_at_s), "planned_end_s": _round(record.planned_end_s),
        "started_at_s": _round(record.started_at_s), "ended_at_s": _round(record.ended_at_s),
        "rolled_back_at_s": _round(record.rolled_back_at_s),
        "start_error": record.start_error, "rollback": record.rollback,
    }


def _chaos(report: ChaosReport) -> dict[str, Any]:
    return {
        "faults": [_fault(r) for r in report.faults],
        "phases": [{"metric": p.metric, "expression": p.expression, "phase": p.phase,
                    "verdict": p.verdict.value, "observed": p.observed} for p in report.phases],
        "recovery": [{"fault": r.fault, "metric": r.budget.selector,
                      "expression": r.budget.expr.text, "within_s": r.budget.within,
                      "stable_s": r.budget.stable, "verdict": r.verdict.value,
                      "time_to_recover_s": r.time_to_recover_s,
                      "source": _source(r.budget.source)} for r in report.recoveries],
    }


def _probes(report: ProbesReport) -> dict[str, Any]:
    return {
        "probes": [{"name": p.name, "kind": p.kind, "interval_s": p.interval_s,
                    "enabled": p.enabled, "samples": p.samples, "errors": p.errors,
                    "errors_by_kind": dict(p.errors_by_kind), "last_error": p.last_error}
                   for p in report.probes],
        "series": [{"metric": s.metric, "tags": dict(s.tags),
                    "points": [[round(t, 3), v] for t, v in s.points]} for s in report.series],
        "statements": [{"probe": s.probe, "queryid": s.queryid, "query": s.query,
                        "calls": s.calls, "total_ms": s.total_ms, "mean_ms": s.mean_ms,
                        "max_ms": s.max_ms} for s in report.statements],
    }


def _start_at(record: StartRecord | None) -> dict[str, Any] | None:
    """`execution.start_at`: the instant asked for and when the load really
    began by this host's clock (`began_at`), so a merge can line the shards
    up and show which one started late."""
    if record is None:
        return None
    began = None if not record.begins else record.at + timedelta(seconds=record.late_s or 0.0)
    return {"at": record.at.isoformat(), "tolerance_s": record.tolerance_s,
            "outcome": record.outcome.value, "waited_s": round(record.waited_s, 3),
            "late_s": _round(record.late_s), "began_at": began.isoformat() if began else None}


def build_results(outcome: RunOutcome,
                  baselines: Sequence[Mapping[str, Any]] = (),
                  capacity: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document; with `baselines` (earlier runs' documents), the plan's
    regression budgets are judged against them too. `capacity`: a capacity
    search's record (loadaction/capacity/record.py), when `outcome` is one
    of its steps."""
    plan = outcome.plan
    timing = outcome.timing
    doc: dict[str, Any] = {
        "schema": RESULTS_SCHEMA,
        "tool": {"name": "loadaction", "version": __version__},
        "plan": {"name": plan.name, "file": plan.file, "sha256": plan.file_sha256,
                 "inputs_sha256": plan.inputs_sha256,
                 "profile": plan.profile, "target": plan.target},
        "started_at": outcome.started_at.isoformat(),
        "ended_at": outcome.ended_at.isoformat(),
        "duration_s": round(outcome.duration_s, 3),
        "timing": {"setup_s": _round(timing.setup_s), "load_s": round(timing.load_s, 3),
                   "teardown_s": _round(timing.teardown_s)},
        "status": outcome.status.value,
        "status_reason": outcome.reason,
        "environment": _environment(),
        # the share of the plan this run ran (--execution-segment, --shard):
        # what `loadaction merge` lines the shards up by
        "execution": {"segment": str(plan.execution.segment),
                      "sequence": str(plan.execution.sequence),
                      "start_at": _start_at(outcome.start),
                      "workers": outcome.workers},
        "scenarios": [
            {"name": s.name, "executor": s.executor, "exec": s.exec,
             "start_time_s": s.start_time_s, "planned_duration_s": s.planned_duration_s,
             "graceful_stop_s": s.graceful_stop_s, "iterations": s.iterations,
             "interrupted_iterations": s.interrupted_iterations,
             "dropped_iterations": s.dropped_iterations, "vus_max": s.vus_max}
            for s in outcome.scenarios
        ],
        "metrics": _metrics(outcome.registry, outcome.duration_s),
        "series": {"interval_s": outcome.series_interval_s, "scenarios": dict(outcome.series)},
        "checks": _checks(outcome.registry),
        "thresholds": [_threshold(t) for t in outcome.thresholds],
        "errors": [{"message": e.message, "kind": e.kind, "count": e.count, "scenario": e.scenario,
                    "first_seen_s": round(e.first_seen_s, 3)} for e in outcome.errors],
        "notices": list(outcome.notices),
    }
    chaos = outcome.contributions.get("chaos")
    if isinstance(chaos, ChaosReport):
        doc["chaos"] = _chaos(chaos)
    probes = outcome.contributions.get("probes")
    if isinstance(probes, ProbesReport):
        doc["probes"] = _probes(probes)
    if capacity is not None:
        doc["capacity"] = dict(capacity)
    if plan.regressions:  # what a merge of shards judges against its baselines
        doc["plan"]["regressions"] = [budget_row(b) for b in plan.regressions]
    doc = outcome.masker.deep(doc)
    if baselines:
        doc.update(regression_section(doc, plan.regressions, baselines))
    return doc
