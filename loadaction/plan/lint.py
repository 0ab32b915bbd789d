"""Warnings: plan mistakes that validate, and names the environment lacks.

These never change the exit code of `run`; they are printed before anything
is sent, so a fault that will never start or a budget that can only end as
`no data` is seen in the first second instead of after the run.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from loadaction.errors import Source
from loadaction.plan.model import (
    Fault, Flow, MapRecordStep, MetricDecl, PlanWarning, RampingArrivalRate, RampingVUs,
    RecordStep, Scenario, Threshold,
)
from loadaction.plan.source import Map, Node, Seq
from loadaction.plan.websocket import WEBSOCKET_METRICS, produced_metrics, walk

CHAOS_METRIC_KINDS: Mapping[str, str] = {
    "chaos_aborted": "abort",
    "chaos_duplicates": "duplicate",
    "chaos_duplicate_mismatch": "duplicate",
    "chaos_reordered": "reorder",
    "chaos_tamper_rejected": "tamper",
    "chaos_tamper_accepted": "tamper",
    "chaos_retries": "timeout-retry",
    "chaos_idempotency_violations": "timeout-retry",
}
"""The fault kind whose client-side effect counts each chaos metric."""

_DICT_METHODS = frozenset({"get", "keys", "items", "values", "copy", "__contains__"})
_OPTIONAL_ENV = (
    re.compile(r"""\benv\s*\.\s*get\s*\(\s*(['"])(?P<name>[^'"]+)\1"""),
    re.compile(r"""(['"])(?P<name>[^'"]+)\1\s+(?:not\s+)?in\s+env\b"""),
    re.compile(r"""\benv\s*(?:\.\s*(?P<name>\w+)|\[\s*(['"])(?P<quoted>[^'"]+)\2\s*\])"""
               r"""\s*(?:\|\s*(?:default|d)\b|is\s+(?:not\s+)?defined\b)"""),
)
"""How templates read an environment variable that may be unset:
`env.get('X')`, `'X' in env`, `env.X | default(...)`, `env.X is defined`."""


def fault_warnings(faults: Sequence[Fault], scenarios: Sequence[Scenario],
                   length: object) -> list[PlanWarning]:
    """Faults that never start, or whose window runs past the load they act on.
    `length(executor)` is the executor's length in seconds."""
    ends = {scenario.name: scenario.start_time + length(scenario.executor)  # type: ignore[operator]
            for scenario in scenarios}
    starts = {scenario.name: scenario.start_time for scenario in scenarios}
    idle = {scenario.name for scenario in scenarios if _never_runs(scenario)}
    load_end = max(ends.values(), default=0.0)
    warnings = []
    for fault in faults:
        begin = fault.at + (starts[fault.anchor] if fault.anchor in starts else 0.0)
        end = begin + fault.duration
        anchor = fault.anchor
        if anchor in idle:
            message = (f"fault '{fault.name}' is timed from scenario '{anchor}', which never "
                       "runs an iteration (its VUs or rate stay at 0): it acts on no load")
        elif begin >= load_end:
            message = (f"fault '{fault.name}' never starts: it is due at {_s(begin)}, when the "
                       f"load has ended ({_s(load_end)})")
        elif anchor is not None and begin >= ends[anchor]:
            message = (f"fault '{fault.name}' is due {_s(fault.at)} after scenario '{anchor}' "
                       f"starts, when '{anchor}' has ended (it runs "
                       f"{_s(ends[anchor] - starts[anchor])}): it overlaps none of its load")
        elif anchor is not None and end > ends[anchor]:
            message = (f"fault '{fault.name}' lasts until {_s(end)}, past the end of scenario "
                       f"'{anchor}' at {_s(ends[anchor])}: the last {_s(end - ends[anchor])} of "
                       "its window see none of that load")
        elif anchor is None and end > load_end:
            message = (f"fault '{fault.name}' lasts until {_s(end)}, past the end of the load at "
                       f"{_s(load_end)}: the last {_s(end - load_end)} of its window see no load")
        else:
            continue
        warnings.append(PlanWarning(message, fault.source))
    return warnings


def threshold_warnings(thresholds: Iterable[Threshold], metrics: Mapping[str, MetricDecl],
                       flows: Iterable[Flow], faults: Iterable[Fault]) -> list[PlanWarning]:
    """Budgets on a custom metric that no record step of a flow that runs
    names, on a chaos metric that no fault of the run counts, or on a
    WebSocket metric that no step of a flow that runs records: they can only
    end as `no data`. Optional budgets are left alone (they allow it)."""
    flows = list(flows)
    recorded = recorded_metrics(flows)
    websocket = produced_metrics(flows)
    kinds = {fault.action.kind for fault in faults}
    warnings = []
    warned: set[str] = set()
    for threshold in thresholds:
        metric = threshold.metric
        if threshold.optional or metric in warned:
            continue
        if metric in metrics and metric not in recorded:
            message = (f"threshold on '{metric}': nothing in the plan records this metric (no "
                       "record step of a flow that runs names it), so it can only end as "
                       "no data")
        elif metric in CHAOS_METRIC_KINDS and CHAOS_METRIC_KINDS[metric] not in kinds:
            message = (f"threshold on '{metric}': only a {CHAOS_METRIC_KINDS[metric]} fault "
                       "counts it and this run has none, so it can only end as no data")
        elif metric in WEBSOCKET_METRICS and metric not in websocket:
            message = (f"threshold on '{metric}': only {WEBSOCKET_METRICS[metric]} records it "
                       "and no flow that runs has one, so it can only end as no data")
        else:
            continue
        warned.add(metric)
        warnings.append(PlanWarning(message, threshold.source))
    return warnings


def recorded_metrics(flows: Iterable[Flow]) -> set[str]:
    """Custom metrics that record steps (plain or mapped) of these flows add to."""
    names: set[str] = set()
    for flow in flows:
        for step in walk(flow.steps):
            if isinstance(step, RecordStep):
                names.add(step.metric)
            elif isinstance(step, MapRecordStep):
                names.update(metric for _, metric in step.mapping)
    return names


def unset_env(references: Iterable[object], strings: Iterable[str],
              env: Collection[str]) -> dict[str, Source]:
    """Environment variables templates read as `env.NAME` or `env['NAME']`
    that are not in `env` and are never read as optional (`env.get('NAME')`,
    `'NAME' in env`, `| default`, `is defined`), each with where it is first read."""
    unset: dict[str, Source] = {}
    for ref in references:
        root, name = getattr(ref, "root", None), getattr(ref, "name", None)
        if root != "env" or name is None or name in _DICT_METHODS:
            continue
        if name not in env:
            unset.setdefault(name, ref.source)  # type: ignore[attr-defined]
    if not unset:
        return unset  # the plan's strings are only read when something is missing
    optional = set(optional_env(strings))
    return {name: source for name, source in unset.items() if name not in optional}


def optional_env(strings: Iterable[str]) -> Iterator[str]:
    for text in strings:
        if "env" not in text:
            continue
        for pattern in _OPTIONAL_ENV:
            for match in pattern.finditer(text):
                name = match.groupdict().get("name") or match.groupdict().get("quoted")
                if name:
                    yield name


def template_strings(nodes: Iterable[Node]) -> Iterator[str]:
    """Every string in these trees that holds a template."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, Map):
            stack.extend(entry.value for entry in node.entries.values())
        elif isinstance(node, Seq):
            stack.extend(node.items)
        elif isinstance(node.value, str) and ("{{" in node.value or "{%" in node.value):
            yield node.value


def _never_runs(scenario: Scenario) -> bool:
    spec = scenario.executor
    if isinstance(spec, RampingVUs):
        return spec.start_vus == 0 and all(stage.target == 0 for stage in spec.stages)
    if isinstance(spec, RampingArrivalRate):
        return spec.start_rate == 0 and all(stage.target == 0 for stage in spec.stages)
    return False


def _s(seconds: float) -> str:
    return f"{seconds:g}s"
