"""Flows: ordered steps, each a single-key mapping (`- request: {...}`).

The parser also notes what flows define (variables from `set`/`extract`,
request names, WebSocket sessions) so references to them can be checked once
everything is read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from loadaction.errors import PlanError, Source, did_you_mean
from loadaction.plan.fields import (
    check_keys, expect_duration, expect_map, expect_seq, expect_str, required, single_entry,
)
from loadaction.plan.model import (
    BatchStep, Flow, GroupStep, IfStep, MetricDecl, RequestSpec, RequestStep, SetStep, Step, ThinkStep,
    WsReceiveStep,
)
from loadaction.plan.requests import parse_request
from loadaction.plan.responses import parse_check, parse_extract, parse_record
from loadaction.plan.source import Map, Node
from loadaction.plan.templates import Templates
from loadaction.plan.websocket import (
    WS_STEP_KINDS, SessionScope, WebSocketSteps, check_message_subjects,
)

STEP_KINDS = ("request", "batch", "check", "extract", "record", "think", "set", "group", "if",
              *WS_STEP_KINDS)

Producer = Literal["request", "message"] | None
"""What the last response of a flow is, where the steps so far tell (None: it depends)."""


@dataclass
class _FlowScope:
    """Request names a flow defines, the `response:` names it uses, the names
    of its ws_receive steps, its sessions, and what its last response is."""

    flow: str
    requests: set[str] = field(default_factory=set)
    responses: list[tuple[str, Source]] = field(default_factory=list)
    messages: dict[str, Source] = field(default_factory=dict)
    sessions: SessionScope = field(init=False)
    last: Producer = None

    def __post_init__(self) -> None:
        self.sessions = SessionScope(self.flow)

    def check(self) -> None:
        for name, source in self.messages.items():
            if name in self.requests:
                raise PlanError(f"name: '{name}' names a request of flow '{self.flow}' too, so "
                                "`response:` could mean either", source)
        for name, source in self.responses:
            if name not in self.requests and name not in self.messages:
                raise PlanError(f"response: flow '{self.flow}' has no request named '{name}'",
                                source, did_you_mean(name, [*self.requests, *self.messages]))
        self.sessions.check()


class FlowParser:
    """Parses every flow of one plan; `defined_vars` collects the names that
    `set` and `extract` steps assign, anywhere."""

    def __init__(self, templates: Templates, metrics: Mapping[str, MetricDecl],
                 allowed_hosts: Collection[str]):
        self.templates = templates
        self.metrics = metrics
        self.allowed_hosts = allowed_hosts
        self.defined_vars: set[str] = set()
        self.request_names: set[str] = set()  # of every flow: what `updates.write` may name
        self.websocket = WebSocketSteps(templates, allowed_hosts)

    def parse_flow(self, name: str, node: Node, source: Source) -> Flow:
        scope = _FlowScope(name)
        steps = self._steps(expect_seq(node, f"flow '{name}'"), scope)
        if not steps:
            raise PlanError(f"flow '{name}' has no steps", source)
        scope.check()
        return Flow(name, steps, source, tuple(scope.sessions.opened))

    def _steps(self, node: Node, scope: _FlowScope,
               kinds: tuple[str, ...] | None = None) -> tuple[Step, ...]:
        """The steps of a list; `kinds` limits what it may hold (on_open, subscriptions)."""
        return tuple(self._step(item, scope, kinds) for item in expect_seq(node, "steps").items)

    def _step(self, node: Node, scope: _FlowScope, kinds: tuple[str, ...] | None = None) -> Step:
        kind, entry = single_entry(node, "step")
        value = entry.value
        if kinds is not None and kind not in kinds and kind in STEP_KINDS:
            raise PlanError(f"'{kind}' is not allowed here (only {', '.join(kinds)})",
                            entry.key_source)
        if kind == "request":
            scope.last = "request"
            return RequestStep(self._request(value, scope))
        if kind == "batch":
            requests = tuple(self._request(item, scope)
                             for item in expect_seq(value, "batch").items)
            if not requests:
                raise PlanError("batch: the list is empty", value.source)
            scope.last = "request"
            return BatchStep(requests, value.source)
        if kind in WS_STEP_KINDS:
            return self._websocket(kind, value, scope)
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
            before = scope.last
            steps = self._steps(required(branch, "steps", "in if"), scope, kinds)
            taken, scope.last = scope.last, before
            otherwise = branch.get("else")
            otherwise_steps = self._steps(otherwise, scope, kinds) if otherwise is not None else ()
            scope.last = taken if taken == scope.last else None
            return IfStep(when, steps, otherwise_steps, branch.source)
        raise PlanError(f"unknown step '{kind}'", entry.key_source,
                        did_you_mean(kind, STEP_KINDS))

    def _websocket(self, kind: str, node: Node, scope: _FlowScope) -> Step:
        before = scope.last
        step = self.websocket.parse(kind, node, scope.sessions,
                                    lambda inner, kinds: self._steps(inner, scope, kinds))
        if kind == "websocket":
            # on_open runs only when the session (re)opens: afterwards the last
            # response is what it made only if it is what came before
            scope.last = before if scope.last == before else None
        elif isinstance(step, WsReceiveStep):
            scope.last = "message"
            if step.name is not None:
                scope.messages.setdefault(step.name, step.source)
        return step

    def _request(self, node: Node, scope: _FlowScope) -> RequestSpec:
        spec = parse_request(node, self.templates, self.allowed_hosts)
        scope.requests.add(spec.name)
        self.request_names.add(spec.name)
        return spec

    def _response_step(self, kind: str, node: Node, scope: _FlowScope) -> Step:
        response = expect_map(node, kind).get("response")
        name = None
        if response is not None:
            name = expect_str(response, "response")
            scope.responses.append((name, response.source))
        step: Step
        if kind == "check":
            step = parse_check(node)
        elif kind == "record":
            step = parse_record(node, self.metrics, self.templates)
        else:
            step = parse_extract(node)
            self.defined_vars.update(item.var for item in step.items)
        if (name in scope.messages if name is not None else scope.last == "message"):
            check_message_subjects(step)  # what it reads is a WebSocket message
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
