"""The plan's `chaos:` section: faults on the run's timeline.

Each fault is one mapping with a `kind`; only the keys of that kind are
accepted, so a `copies:` under an `abort` fault is reported instead of
silently ignored. Templates compile with the plan's `Templates` and may read
`env`, `secrets` and `vars` only: faults start and stop outside any VU.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any

from loadaction.errors import PlanError, Source, did_you_mean
from loadaction.metrics.thresholds import parse_selector, parse_threshold
from loadaction.plan.chaos_actions import ACTION_PARSERS, KIND_OPTIONS, REQUIRED_OPTIONS
from loadaction.plan.fields import (
    check_keys, expect_choice, expect_duration, expect_map, expect_seq, expect_str, required,
)
from loadaction.plan.limits import duration_problem
from loadaction.plan.model import (
    BatchStep, ExtractStep, Fault, Flow, RecoveryBudget, RequestStep,
    SetStep,
)
from loadaction.plan.profiles import Profile
from loadaction.plan.references import check_references
from loadaction.plan.source import Map, Node
from loadaction.plan.templates import Reference, Templates
from loadaction.plan.websocket import walk

CHAOS_ROOTS = ("env", "secrets", "vars")
"""What chaos templates may read: faults start and stop outside any VU."""

FAULT_KINDS = tuple(KIND_OPTIONS)
COMMON_KEYS = ("name", "kind", "at", "from", "duration", "recovery")
_ALL_OPTIONS = tuple(dict.fromkeys(key for keys in KIND_OPTIONS.values() for key in keys))
_FAULT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RECOVERY_KEYS = ("metric", "threshold", "within", "stable")
RECOVERY_METRICS: Mapping[str, tuple[str, ...]] = {
    "http_req_duration": ("avg", "med", "max", "p"),
    "http_req_failed": ("rate",),
}
"""What recovery budgets can judge: per-second series the engine keeps."""
_RECOVERY_HELP = ("recovery budgets judge http_req_duration (avg, med, max, p(N)) or "
                  "http_req_failed (rate), optionally for one scenario: "
                  "http_req_duration{scenario:<name>}")
DEFAULT_STABLE = 3.0


def parse_chaos(node: Node | None, *, templates: Templates, flows: Mapping[str, Flow],
                scenarios: Collection[str], profile: Profile | None,
                vars: Collection[str], secrets: Collection[str]) -> tuple[Fault, ...]:
    """Every fault of the plan (anchored or not), with the profile's duration
    factor applied to `at` and `duration`. `vars` are those a fault can
    read: the plan's, --var values, and those set in setup (not a VU's)."""
    if node is None:
        return ()
    first_reference = len(templates.references)
    requests = request_names(flows.values())
    faults: list[Fault] = []
    seen: dict[str, Source] = {}
    for item in expect_seq(node, "chaos").items:
        fault = _fault(item, templates, requests, scenarios, profile)
        earlier = seen.get(fault.name)
        if earlier is not None:
            raise PlanError(f"fault '{fault.name}' is already defined at {earlier}",
                            fault.source)
        seen[fault.name] = fault.source
        faults.append(fault)
    _check_references(templates.references[first_reference:], vars, secrets)
    return tuple(faults)


def _check_references(references: list[Reference], vars: Collection[str],
                      secrets: Collection[str]) -> None:
    """Names outside env, secrets and vars, undeclared secrets, and vars a
    fault cannot see (a VU's own, set in a flow)."""
    read = {ref.name for ref in references if ref.root == "vars" and ref.name}
    check_references(references, roots=CHAOS_ROOTS, vars=read, secrets=secrets, data=())
    for ref in references:
        if ref.root == "vars" and ref.name is not None and ref.name not in vars:
            raise PlanError(f"'vars.{ref.name}' is not defined for faults", ref.source,
                            did_you_mean(ref.name, vars) or
                            "faults see the plan's vars, --var values and vars set in "
                            "setup, not those a VU sets in a flow")


def select_faults(faults: Iterable[Fault], running: Collection[str]) -> tuple[Fault, ...]:
    """The faults of a run limited to `running` scenarios (--scenario): a
    fault anchored to a scenario that does not run is dropped, and so are
    recovery budgets on such a scenario (they could never recover)."""
    selected = []
    for fault in faults:
        if fault.anchor is not None and fault.anchor not in running:
            continue
        recovery = tuple(budget for budget in fault.recovery
                         if dict(budget.tags).get("scenario") in (None, *running))
        selected.append(replace(fault, recovery=recovery))
    return tuple(selected)


def shift_faults(faults: Iterable[Fault], by: float) -> tuple[Fault, ...]:
    """The faults of a run whose clock starts `by` seconds into the plan's
    timeline (--scenario: the earliest selected scenario starts at once).
    A fault anchored with `from` moves with its scenario and is kept as is. A
    fault timed from the run's start moves `by` earlier: one that would have
    ended by the new start is dropped, one active at it starts at 0 and keeps
    its end."""
    if by <= 0:
        return tuple(faults)
    shifted = []
    for fault in faults:
        if fault.anchor is not None:
            shifted.append(fault)
            continue
        start, end = fault.at - by, fault.at + fault.duration - by
        if end <= 0:
            continue
        start = max(start, 0.0)
        shifted.append(replace(fault, at=start, duration=end - start))
    return tuple(shifted)


def phase_values(faults: Iterable[Fault]) -> tuple[str, ...]:
    """The values the `phase` tag takes in a plan with these faults."""
    names = [fault.name for fault in faults]
    return ("before", *(f"during:{name}" for name in names), *(f"after:{name}" for name in names))


def request_names(flows: Iterable[Flow]) -> set[str]:
    """The `name` of every request in these flows (batches, groups and ifs included)."""
    names: set[str] = set()
    for flow in flows:
        for step in walk(flow.steps):
            if isinstance(step, RequestStep):
                names.add(step.request.name)
            elif isinstance(step, BatchStep):
                names.update(request.name for request in step.requests)
    return names


def assigned_vars(flow: Flow | None) -> set[str]:
    """The vars a flow's `set` and `extract` steps assign (for `setup`: the
    vars chaos templates can read besides the plan's own)."""
    names: set[str] = set()
    if flow is not None:
        for step in walk(flow.steps):
            if isinstance(step, SetStep):
                names.update(var for var, _ in step.assignments)
            elif isinstance(step, ExtractStep):
                names.update(item.var for item in step.items)
    return names


def _fault(node: Node, templates: Templates, requests: Collection[str],
           scenarios: Collection[str], profile: Profile | None) -> Fault:
    fault = expect_map(node, "fault")
    if "name" not in fault:
        check_keys(fault, (*COMMON_KEYS, *_ALL_OPTIONS), "in fault")
    name_node = required(fault, "name", "in fault")
    name = expect_str(name_node, "name")
    if not _FAULT_NAME.fullmatch(name):
        raise PlanError(f"name: fault names may contain only letters, digits, '_', '-' and "
                        f"'.' (they become phase tag values), got '{name}'", name_node.source)
    where = f"in fault '{name}'"
    if "kind" not in fault:
        _check_keys(fault, None, where)  # a misspelt `kind` is the likely cause
    kind = expect_choice(required(fault, "kind", where), "kind", FAULT_KINDS)
    _check_keys(fault, kind, where)
    for key in REQUIRED_OPTIONS[kind]:
        required(fault, key, where)
    at_node, anchor_node = fault.get("at"), fault.get("from")
    at = expect_duration(at_node, "at") if at_node is not None else 0.0
    duration = expect_duration(required(fault, "duration", where), "duration", positive=True)
    factor = profile.duration if profile is not None else 1.0
    if profile is not None:
        for what, seconds in (("at", at), ("duration", duration)):
            problem = duration_problem(seconds * factor)
            if problem is not None:
                raise PlanError(f"profile '{profile.name}' scales {what} of fault '{name}' "
                                f"(x{factor:g}): {problem}",
                                profile.factor_sources.get("duration", profile.source))
    recovery = fault.get("recovery")
    return Fault(
        name=name,
        action=ACTION_PARSERS[kind](fault, templates, requests),
        at=at * factor,
        duration=duration * factor,
        source=name_node.source,
        anchor=_anchor(anchor_node, scenarios) if anchor_node is not None else None,
        recovery=_recovery(recovery, scenarios) if recovery is not None else (),
    )


def _check_keys(node: Map, kind: str | None, where: str) -> None:
    """Like fields.check_keys, but says when a key belongs to another kind."""
    allowed = (*COMMON_KEYS, *(KIND_OPTIONS[kind] if kind else _ALL_OPTIONS))
    for key, entry in node.items():
        if key in allowed:
            continue
        if kind is not None and key in _ALL_OPTIONS:
            owners = [other for other, keys in KIND_OPTIONS.items() if key in keys]
            hint = f"'{key}' is not an option of {kind}; it belongs to {', '.join(owners)}"
        else:
            hint = did_you_mean(key, allowed)
        raise PlanError(f"unknown key '{key}' {where}", entry.key_source, hint)


def _anchor(node: Node, scenarios: Collection[str]) -> str:
    name = expect_str(node, "from")
    if name not in scenarios:
        raise PlanError(f"from: unknown scenario '{name}'", node.source,
                        did_you_mean(name, scenarios))
    return name


def _recovery(node: Node, scenarios: Collection[str]) -> tuple[RecoveryBudget, ...]:
    budgets = []
    for item in expect_seq(node, "recovery").items:
        budget = expect_map(item, "recovery budget")
        where = "in recovery budget"
        check_keys(budget, _RECOVERY_KEYS, where)
        metric_node = required(budget, "metric", where)
        metric, tags = _recovery_selector(metric_node, scenarios)
        allowed = RECOVERY_METRICS[metric]
        text_node = required(budget, "threshold", where)
        text = expect_str(text_node, "threshold")
        try:
            expr = parse_threshold(text)
        except ValueError as exc:
            raise PlanError(f"threshold: {exc}", text_node.source) from None
        if expr.aggregation not in allowed:
            listed = ", ".join(_aggregation_text(a) for a in allowed)
            raise PlanError(f"threshold '{expr.text}': a recovery budget on {metric} takes "
                            f"{listed}", text_node.source)
        stable = budget.get("stable")
        budgets.append(RecoveryBudget(
            metric=metric,
            tags=tags,
            expr=expr,
            within=expect_duration(required(budget, "within", where), "within", positive=True),
            source=metric_node.source,
            stable=(expect_duration(stable, "stable", positive=True) if stable is not None
                    else DEFAULT_STABLE),
        ))
    if not budgets:
        raise PlanError("recovery: the list is empty", node.source)
    return tuple(budgets)


def _recovery_selector(node: Node, scenarios: Collection[str]
                       ) -> tuple[str, tuple[tuple[str, str], ...]]:
    text = expect_str(node, "metric")
    try:
        metric, tags = parse_selector(text)
    except ValueError as exc:
        raise PlanError(f"metric: {exc}", node.source) from None
    if metric not in RECOVERY_METRICS:
        raise PlanError(f"metric: a recovery budget cannot judge '{metric}'", node.source,
                        did_you_mean(metric, RECOVERY_METRICS) or _RECOVERY_HELP)
    for key, value in tags:
        if key != "scenario":
            raise PlanError(f"metric: a recovery budget cannot select by '{key}'", node.source,
                            _RECOVERY_HELP)
        if value not in scenarios:
            raise PlanError(f"metric: unknown scenario '{value}'", node.source,
                            did_you_mean(value, scenarios))
    return metric, tags


def _aggregation_text(aggregation: Any) -> str:
    return "p(N)" if aggregation == "p" else str(aggregation)
