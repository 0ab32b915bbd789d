"""A virtual user: runs a flow's steps, one iteration at a time.

A failing step (a template that cannot render, an extract that finds nothing,
a refused host) ends the iteration with an error counted in the run's error
log, as an exception ends a k6 iteration; the VU goes on with the next one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Mapping
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from loadaction.engine.data import DataExhausted, IterationData
from loadaction.engine.requests import PreparedSpec, Requester
from loadaction.engine.response import ResponseView
from loadaction.engine.safety import RequestRefused
from loadaction.engine.state import RunState
from loadaction.engine.transport import ErrorKind, PreparedRequest
from loadaction.metrics.registry import Tags
from loadaction.metrics.series import LiveBucket
from loadaction.plan.model import (
    BatchStep, CheckStep, Condition, ExtractStep, Flow, GroupStep, IfStep, MapRecordStep, Matcher,
    RecordStep, RequestSpec, RequestStep, SetStep, Step, ThinkStep, WebSocketStep, WsCloseStep,
    WsReceiveStep, WsSendStep, WsSubscribeStep,
)

if TYPE_CHECKING:
    from loadaction.engine.websocket.scope import VuSessions


class StepError(Exception):
    """An iteration cannot go on; the message is what the error log shows."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.FLOW) -> None:
        super().__init__(message)
        self.kind = kind


def matches(matcher: Matcher, present: bool, value: Any) -> bool:
    kind, operand = matcher.kind, matcher.operand
    if kind == "exists":
        return present == bool(operand)
    if not present:
        return False
    if kind == "equals":
        return _equal(value, operand)
    if kind == "in":
        return any(_equal(value, o) for o in operand)
    if kind == "contains":
        if isinstance(value, list | dict):
            return operand in value
        return str(operand) in str(value)
    return operand.search(str(value)) is not None  # matches


def _equal(value: Any, operand: Any) -> bool:
    if value == operand and type(value) is not bool or value is operand:
        return True
    # a header "200" or a status 200 equals the plan's 200 or "200"
    return isinstance(value, str) != isinstance(operand, str) and str(value) == str(operand)


def field_text(value: Any) -> str:
    """How a response field names a metric in a `map` (JSON true is 'true')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


class ScenarioShared:
    """What all VUs of one scenario can share, because it depends on the
    scenario and the plan only: prepared requests (tags, merged headers,
    sinks, constant requests) and metric sinks. Kept once rather than per VU,
    it is most of what 10,000 VUs would otherwise hold ten thousand times."""

    __slots__ = ("prepared", "sinks")

    def __init__(self) -> None:
        self.prepared: dict[tuple[int, str], PreparedSpec] = {}
        self.sinks: dict[tuple[str, Tags], Any] = {}


class VirtualUser:
    def __init__(self, state: RunState, scenario: str, vu_id: int, bucket: LiveBucket,
                 scenario_tags: Tags, shared: ScenarioShared | None = None) -> None:
        self.state = state
        self.scenario = scenario
        self.id = vu_id
        self.bucket = bucket
        self.scenario_tags = scenario_tags
        self.requester = Requester(state, scenario, bucket)
        self.vars: dict[str, Any] = dict(state.global_vars)
        self._rng: random.Random | None = None
        # the VU's WebSocket sessions, only when its flow opens any
        self.sessions: VuSessions | None = None
        shared = shared if shared is not None else ScenarioShared()
        self._prepared = shared.prepared
        self._sinks = shared.sinks

    @property
    def rng(self) -> random.Random:
        """Created on first use: its state is 2.5 KB, and most flows never draw."""
        if self._rng is None:
            self._rng = random.Random()
        return self._rng

    # ------------------------------------------------------------ iteration

    def iteration(self, flow: Flow, n: int, scenario_iteration: int) -> Coroutine[Any, Any, None]:
        """Run the flow once (await it); raises StepError (or DataExhausted, CapReached).

        A plain function handing back the steps' coroutine, not a coroutine
        itself: each layer of coroutines costs on every request, as every
        resumption passes through all of them."""
        plan = self.state.plan
        ctx: dict[str, Any] = {
            "env": plan.env, "secrets": plan.secrets, "vars": self.vars, "vu": self.id,
            "iter": n, "scenario": {"name": self.scenario, "iteration": scenario_iteration},
            "data": IterationData(self.state.feeders), "response": None,
        }
        responses: dict[str, ResponseView] = {}
        if self.sessions is not None:
            return self._session_iteration(self.sessions, flow, ctx, responses)
        return self._steps(flow.steps, ctx, responses, "")

    async def _session_iteration(self, sessions: VuSessions, flow: Flow, ctx: dict[str, Any],
                                 responses: dict[str, ResponseView]) -> None:
        """An iteration of a flow with WebSocket sessions: those it opened
        with `keep: iteration` close at its end, drained; when it is
        interrupted or the run is capped, they are dropped at once."""
        sessions.ctx = ctx
        try:
            await self._steps(flow.steps, ctx, responses, "")
        except (StepError, DataExhausted):
            await sessions.end_iteration()
            raise
        except BaseException:  # interrupted, capped, or a bug
            sessions.abort_iteration()
            raise
        await sessions.end_iteration()

    def run_steps(self, steps: tuple[Step, ...], ctx: dict[str, Any],
                  responses: dict[str, Any], group: str) -> Coroutine[Any, Any, None]:
        """Steps outside the flow's own list: a session's on_open, a
        subscription's steps for one message."""
        return self._steps(steps, ctx, responses, group)

    async def _steps(self, steps: tuple[Step, ...], ctx: dict[str, Any],
                     responses: dict[str, Any], group: str) -> None:
        for step in steps:
            match step:
                case RequestStep(request=spec):
                    prepared, req = self._build(spec, ctx, group)
                    view = await self.requester.send(prepared, req)
                    responses[spec.name] = view
                    ctx["response"] = view
                case BatchStep(requests=specs):
                    async with asyncio.TaskGroup() as tg:
                        tasks = [tg.create_task(self._request(s, ctx, group)) for s in specs]
                    for spec, task in zip(specs, tasks):
                        responses[spec.name] = ctx["response"] = task.result()
                case CheckStep():
                    view = self._response(step.response, ctx, responses)
                    self._check(step, view, group)
                case ExtractStep():
                    view = self._response(step.response, ctx, responses)
                    for item in step.items:
                        present, value = view.subject(item.subject, item.key)
                        if not present:
                            about = (f"status {view.status}" if isinstance(view, ResponseView)
                                     else view.about())
                            raise StepError(f"extract '{item.var}': {_describe(item.subject, item.key)} "
                                            f"not found in the response of '{view.name}' ({about})")
                        self.vars[item.var] = value
                case RecordStep():
                    self._record(step, ctx, group)
                case MapRecordStep():
                    view = self._response(step.response, ctx, responses)
                    present, value = view.subject(step.subject, step.key)
                    text = field_text(value) if present else None
                    # every mapped counter gets a sample (0 or 1), so `count==0`
                    # is judged on data once the step ran, not reported as no data
                    for expected, metric in step.mapping:
                        self._sink(metric, group, view.label).add(1 if expected == text else 0)
                case ThinkStep(min_s=lo, max_s=hi):
                    await asyncio.sleep(lo if hi == lo else self.rng.uniform(lo, hi))
                case SetStep(assignments=assignments):
                    for name, tpl in assignments:
                        self.vars[name] = self._render(tpl, ctx, name)
                case IfStep(when=when, steps=inner, otherwise=otherwise):
                    chosen = inner if self._render(when, ctx, "when") else otherwise
                    await self._steps(chosen, ctx, responses, group)
                case GroupStep(name=name, steps=inner):
                    path = f"{group}::{name}"
                    label = self.state.label_now()  # a group is attributed to when it began
                    start = perf_counter_ns()
                    await self._steps(inner, ctx, responses, path)
                    self._sink("group_duration", path, label).add_us((perf_counter_ns() - start) // 1000)
                case WebSocketStep() | WsSendStep() | WsReceiveStep() | WsSubscribeStep() | WsCloseStep():
                    await self.sessions.step(step, ctx, responses, group)  # type: ignore[union-attr]

    # ------------------------------------------------------------ steps

    async def _request(self, spec: RequestSpec, ctx: Mapping[str, Any], group: str) -> ResponseView:
        prepared, req = self._build(spec, ctx, group)
        return await self.requester.send(prepared, req)

    def _build(self, spec: RequestSpec, ctx: Mapping[str, Any],
               group: str) -> tuple[PreparedSpec, PreparedRequest]:
        key = (id(spec), group)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = PreparedSpec(self.state, spec, self.scenario_tags, group)
        try:
            req = self.requester.build(prepared, ctx)
        except RequestRefused as exc:
            raise StepError(str(exc), ErrorKind.REFUSED) from None
        except DataExhausted:
            raise
        except Exception as exc:  # a template error in the user's plan
            raise StepError(f"{spec.source}: request '{spec.name}' could not be rendered: {exc}") from None
        return prepared, req

    def _response(self, name: str | None, ctx: Mapping[str, Any],
                  responses: Mapping[str, Any]) -> Any:
        """A ResponseView, or a WebSocket message a ws_receive took."""
        view = responses.get(name) if name is not None else ctx["response"]
        if view is None:
            raise StepError(f"no response{f' named {name!r}' if name else ''} yet in this iteration")
        return view

    def _check(self, step: CheckStep, view: Any, group: str) -> None:
        for cond in step.conditions:
            present, value = view.subject(cond.subject, cond.key)
            self._check_sink(cond, group, view.label).add(matches(cond.matcher, present, value))

    def _check_sink(self, cond: Condition, group: str, label: str | None) -> Any:
        key = ("checks", cond.name, group, label)
        sink = self._sinks.get(key)
        if sink is None:
            tags = [*self.scenario_tags, ("check", cond.name), ("group", group)]
            if label is not None:
                tags.append((self.state.attribution.key, label))  # type: ignore[union-attr]
            sink = self._sinks[key] = self.state.registry.sink("checks", tuple(sorted(tags)))
        return sink

    def _record(self, step: RecordStep, ctx: Mapping[str, Any], group: str) -> None:
        """Attributed like the response it is about (the iteration's latest),
        or to now when there is none yet."""
        view = ctx["response"]
        label = view.label if view is not None else self.state.label_now()
        sink = self._sink(step.metric, group, label)
        if step.when is not None and not self._render(step.when, ctx, "when"):
            if sink.kind == "counter":
                sink.add(0)  # the step ran and counted nothing: data, not `no data`
            return
        if step.value is None:
            sink.add(True if sink.kind == "rate" else 1)
            return
        value = self._render(step.value, ctx, "value")
        if sink.kind == "rate":
            sink.add(bool(value))
            return
        try:
            sink.add(float(value))
        except (TypeError, ValueError):
            raise StepError(f"{step.source}: record '{step.metric}': value {value!r} is not a number") from None

    def _sink(self, metric: str, group: str, label: str | None) -> Any:
        """The sink of a custom metric (or group_duration) here; with an
        attribution (chaos), samples also carry its label."""
        key = (metric, group, label)
        sink = self._sinks.get(key)
        if sink is None:
            tags = [*self.scenario_tags, ("group", group)]
            if label is not None:
                tags.append((self.state.attribution.key, label))  # type: ignore[union-attr]
            sink = self._sinks[key] = self.state.registry.sink(metric, tuple(sorted(tags)))
        return sink

    @staticmethod
    def _render(tpl: Any, ctx: Mapping[str, Any], what: str) -> Any:
        try:
            return tpl.render(ctx)
        except DataExhausted:
            raise
        except Exception as exc:
            raise StepError(f"'{what}' could not be rendered: {exc}") from None


def _describe(subject: str, key: Any) -> str:
    if subject == "json":
        return f"JSON path {key.text}"
    if subject == "header":
        return f"header {key}"
    return subject
