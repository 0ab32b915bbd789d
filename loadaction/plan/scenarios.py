"""Scenarios: an executor, the flow it runs, its timing, tags and budgets."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from loadaction.errors import PlanError, did_you_mean
from loadaction.plan.executors import (
    EXECUTOR_OPTIONS, TIMING_OPTIONS, build_executor, executor_length, read_options,
)
from loadaction.plan.fields import expect_choice, expect_map, expect_str, required, string_pairs
from loadaction.plan.limits import check_options, check_scenario_length
from loadaction.plan.metrics import parse_regressions, parse_thresholds
from loadaction.plan.model import MetricDecl, RegressionBudget, Scenario, Threshold
from loadaction.plan.profiles import Profile, apply_overrides, scale_options
from loadaction.plan.source import Entry, Map

COMMON_KEYS = ("executor", "exec", "tags", "thresholds", "regressions", *TIMING_OPTIONS)
_ALL_OPTIONS = tuple(dict.fromkeys(key for keys in EXECUTOR_OPTIONS.values() for key in keys))


def parse_scenario(name: str, entry: Entry, *, flows: Collection[str],
                   metrics: Mapping[str, MetricDecl],
                   profile: Profile | None,
                   phases: Collection[str] | None = None
                   ) -> tuple[Scenario, list[Threshold], list[RegressionBudget]]:
    """The scenario as the profile shapes it, and its own thresholds and regression budgets."""
    where = f"in scenario '{name}'"
    override = profile.overrides.get(name) if profile else None
    node = apply_overrides(expect_map(entry.value, f"scenario '{name}'"), override)
    if "executor" not in node:
        _check_keys(node, None, where)  # a misspelt `executor` is the likely cause
    executor = expect_choice(required(node, "executor", where), "executor", EXECUTOR_OPTIONS)
    _check_keys(node, executor, where)
    written = read_options(node, executor, where)
    frozen = override.entries.keys() if override else ()
    options = scale_options(written, executor, profile, frozen)
    check_options(name, executor, options, written, node, profile)
    scenario = Scenario(
        name=name,
        executor=build_executor(executor, options, node),
        exec=_exec(node, name, flows),
        source=entry.key_source,
        start_time=options.get("startTime", 0.0),
        graceful_stop=options.get("gracefulStop", 30.0),
        tags=string_pairs(node.entries["tags"].value, "tags") if "tags" in node else (),
    )
    check_scenario_length(scenario, executor_length(scenario.executor))
    thresholds, regressions = node.get("thresholds"), node.get("regressions")
    return (
        scenario,
        [] if thresholds is None else parse_thresholds(
            expect_map(thresholds, "thresholds").items(), metrics, (name,), scenario=name,
            phases=phases),
        [] if regressions is None else parse_regressions(
            expect_map(regressions, "regressions").items(), metrics, (name,), scenario=name,
            phases=phases),
    )


def _check_keys(node: Map, executor: str | None, where: str) -> None:
    """Like fields.check_keys, but says when a key belongs to another executor."""
    options = EXECUTOR_OPTIONS[executor] if executor else _ALL_OPTIONS
    allowed = (*COMMON_KEYS, *options)
    for key, item in node.items():
        if key in allowed:
            continue
        if key in _ALL_OPTIONS:
            hint = f"'{key}' is not an option of {executor}"
        else:
            hint = did_you_mean(key, allowed)
        raise PlanError(f"unknown key '{key}' {where}", item.key_source, hint)


def _exec(node: Map, name: str, flows: Collection[str]) -> str:
    """The flow to run: `exec`, or the flow named like the scenario."""
    exec_node = node.get("exec")
    flow = expect_str(exec_node, "exec") if exec_node is not None else name
    if flow not in flows:
        source = exec_node.source if exec_node is not None else node.source
        hint = did_you_mean(flow, flows) or (
            None if exec_node is not None else "set 'exec' to the flow this scenario runs")
        raise PlanError(f"scenario '{name}' runs flow '{flow}', which is not defined",
                        source, hint)
    return flow
