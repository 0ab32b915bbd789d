"""Flows: ordered steps, each a single-key mapping (`- request: {...}`).

The parser also notes what flows define (variables from `set`/`extract`,
request names) so references to them can be checked once everything is read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from loadaction.errors import PlanError, Source, did_you_mean
from loadaction.plan.fields import (
    check_keys, expect_duration, expect_map, expect_seq, expect_str, required, single_entry,
)
from loadaction.plan.model import (
    BatchStep, Flow, GroupStep, IfStep, MetricDecl, RequestSpec, RequestStep, SetStep, Step, ThinkStep,
)
from loadaction.plan.requests import parse_request
from loadaction.plan.responses import parse_check, parse_extract, parse_record
from loadaction.plan.source import Map, Node
from loadaction.plan.templates import Templates

STEP_KINDS = ("request", "batch", "check", "extract", "record", "think", "set", "group", "if")


@dataclass
class _FlowScope:
    """Request names a flow defines and the `response:` names it uses."""

    flow: str
    requests: set[str] = field(default_factory=set)
    responses: list[tuple[str, Source]] = field(default_factory=list)

    def check(self) -> None:
        for name, source in self.responses:
            if name not in self.requests:
                raise PlanError(f"response: flow '{self.flow}' has no request named '{name}'",
                                source, did_you_mean(name, self.requests))


class FlowParser:
    """Parses every flow of one plan; `defined_vars` collects the names that
    `set` and `extract` steps assign, anywhere."""

    def __init__(self, templates: Templates, metrics: Mapping[str, MetricDecl],
                 allowed_hosts: Collection[str]):
        self.templates = templates
        self.metrics = metrics
        self.allowed_hosts = allowed_hosts
        self.defined_vars: set[str] = set()

    def parse_flow(self, name: str, node: Node, source: Source) -> Flow:
        scope = _FlowScope(name)
        steps = self._steps(expect_seq(node, f"flow '{name}'"), scope)
        if not steps:
            raise PlanError(f"flow '{name}' has no steps", source)
        scope.check()
        return Flow(name, steps, source)

    def _steps(self, node: Node, scope: _FlowScope) -> tuple[Step, ...]:
        return tuple(self._step(item, scope) for item in expect_seq(node, "steps").items)

    def _step(self, node: Node, scope: _FlowScope) -> Step:
        kind, entry = single_entry(node, "step")
        value = entry.value
        if kind == "request":
            return RequestStep(self._request(value, scope))
        if kind == "batch":
            requests = tuple(self._request(item, scope)
                             for item in expect_seq(value, "batch").items)
            if not requests:
                raise PlanError("batch: the list is empty", value.source)
            return BatchStep(requests, value.source)
        if kind in ("check", "extract", "record"):
            return self._response_step(kind, value, scope)
        if kind == "think":
            return _think(value)
        if kind == "set":
            assignments = expect_map(value, "set")
            self.defined_vars.update(assignments.entries)
            return SetStep(tuple((var, self.templates.compile_node(item.value))
                                 for var, item in assignments.items()), value.source)
        if kind == "group":
            group = expect_map(value, "group")
            check_keys(group, ("name", "steps"), "in group")
            name = expect_str(required(group, "name", "in group"), "name")
            steps = self._steps(required(group, "steps", "in group"), scope)
            return GroupStep(name, steps, group.source)
        if kind == "if":
            branch = expect_map(value, "if")
            check_keys(branch, ("when", "steps", "else"), "in if")
            when = self.templates.compile_node(required(branch, "when", "in if"))
            steps = self._steps(required(branch, "steps", "in if"), scope)
            otherwise = branch.get("else")
            return IfStep(when, steps, self._steps(otherwise, scope) if otherwise is not None else (),
                          branch.source)
        raise PlanError(f"unknown step '{kind}'", entry.key_source,
                        did_you_mean(kind, STEP_KINDS))

    def _request(self, node: Node, scope: _FlowScope) -> RequestSpec:
        spec = parse_request(node, self.templates, self.allowed_hosts)
        scope.requests.add(spec.name)
        return spec

    def _response_step(self, kind: str, node: Node, scope: _FlowScope) -> Step:
        response = expect_map(node, kind).get("response")
        if response is not None:
            scope.responses.append((expect_str(response, "response"), response.source))
        if kind == "check":
            return parse_check(node)
        if kind == "record":
            return parse_record(node, self.metrics, self.templates)
        step = parse_extract(node)
        self.defined_vars.update(item.var for item in step.items)
        return step


def _think(node: Node) -> ThinkStep:
    """`think: 1s` pauses exactly; `{min, max}` pauses a uniform random time."""
    if not isinstance(node, Map):
        seconds = expect_duration(node, "think")
        return ThinkStep(seconds, seconds, node.source)
    check_keys(node, ("min", "max"), "in think")
    low = expect_duration(required(node, "min", "in think"), "min")
    high_node = required(node, "max", "in think")
    high = expect_duration(high_node, "max")
    if high < low:
        raise PlanError(f"max: must not be shorter than min ({low:g}s)", high_node.source)
    return ThinkStep(low, high, node.source)
