"""The results document (docs/results-schema.md) built from a finished run.

This is the only place that reads engine state for reporting; everything
downstream (terminal, Markdown, JUnit, GitHub) reads the document.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

from loadaction import __version__
from loadaction.engine.runner import RunOutcome

RESULTS_SCHEMA = 1


def _plan_digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _environment() -> dict[str, Any]:
    server, repo, run_id = (os.environ.get(k) for k in
                            ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ci": bool(os.environ.get("CI")),
        "github_run_url": f"{server}/{repo}/actions/runs/{run_id}" if server and repo and run_id else None,
    }


def _metrics(outcome: RunOutcome) -> dict[str, Any]:
    out: dict[str, Any] = {}
    duration = outcome.duration_s
    registry = outcome.state.registry
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


def _checks(outcome: RunOutcome) -> list[dict[str, Any]]:
    """One row per check, scenario and group; chaos phases are summed (the
    per-phase view is `chaos.phases`)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for tags, sink in outcome.state.registry["checks"].sinks.items():
        t = dict(tags)
        key = (t.get("check", ""), t.get("scenario", ""), t.get("group", ""))
        row = rows.setdefault(key, {"name": key[0], "scenario": key[1], "group": key[2],
                                    "passes": 0, "fails": 0})
        row["passes"] += sink.passes
        row["fails"] += sink.total - sink.passes
    return list(rows.values())


def build_results(outcome: RunOutcome) -> dict[str, Any]:
    plan = outcome.plan
    state = outcome.state
    errors = [{"message": msg, "count": e.count, "scenario": scen, "first_seen_s": round(e.first_seen_s, 3)}
              for (scen, msg), e in sorted(state.errors.entries.items(), key=lambda kv: -kv[1].count)]
    notices = list(state.notices)
    if state.errors.dropped:
        notices.append(f"{state.errors.dropped} further errors with other messages were not kept")
    doc = {
        "schema": RESULTS_SCHEMA,
        "tool": {"name": "loadaction", "version": __version__},
        "plan": {"name": plan.name, "file": plan.file, "sha256": _plan_digest(plan.file),
                 "profile": plan.profile, "target": plan.target},
        "started_at": outcome.started_at.isoformat(),
        "ended_at": outcome.ended_at.isoformat(),
        "duration_s": round(outcome.duration_s, 3),
        "status": outcome.status,
        "status_reason": outcome.reason,
        "environment": _environment(),
        "scenarios": [
            {"name": run.scenario.name, "executor": run.scenario.executor.kind,
             "exec": run.scenario.exec, "start_time_s": run.scenario.start_time,
             "planned_duration_s": ex.planned_duration(), "graceful_stop_s": run.scenario.graceful_stop,
             "iterations": run.iterations, "interrupted_iterations": run.interrupted,
             "dropped_iterations": run.dropped, "vus_max": run.vus_max}
            for run, ex in outcome.scenarios
        ],
        "metrics": _metrics(outcome),
        "series": state.series.as_dict(),
        "checks": _checks(outcome),
        "thresholds": [t.as_dict() for t in outcome.thresholds],
        "errors": errors,
        "notices": notices,
    }
    if plan.chaos:
        doc["chaos"] = {
            "faults": [r.as_dict() for r in outcome.faults],
            "phases": outcome.phase_verdicts,
            "recovery": [r.as_dict() for r in outcome.recoveries],
        }
    return state.masker.deep(doc)
