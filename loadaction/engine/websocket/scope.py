"""Where the sessions of a scenario's VUs live, and a VU's own sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from loadaction.engine.state import RunState
from loadaction.engine.transport import ErrorKind
from loadaction.engine.vu import StepError
from loadaction.engine.websocket.message import MessageView
from loadaction.engine.websocket.session import Session
from loadaction.plan.model import (
    Flow,
    Renderable,
    Step,
    WebSocketStep,
    WsCloseStep,
    WsReceiveStep,
    WsSendStep,
    WsSubscribeStep,
)
from loadaction.plan.websocket import walk

if TYPE_CHECKING:
    from loadaction.engine.vu import VirtualUser

T = TypeVar("T")


class SessionScope:
    """The TaskGroup the background tasks (readers, pings, heartbeats) of
    every session of a scenario's VUs (or of setup's, teardown's) run in,
    around the scenario's own work: nothing of a session outlives it."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self._tg: asyncio.TaskGroup | None = None
        self._vus: list[VuSessions] = []
        self._keeping: dict[int, frozenset[str]] = {}

    def for_vu(self, vu: VirtualUser, flow: Flow, cache: dict[Any, Any]) -> VuSessions:
        keeping = self._keeping.get(id(flow))
        if keeping is None:
            keeping = self._keeping[id(flow)] = frozenset(
                step.session for step in walk(flow.steps)
                if isinstance(step, WsReceiveStep | WsSubscribeStep))
        sessions = VuSessions(self, vu, keeping, cache)
        self._vus.append(sessions)
        return sessions

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        assert self._tg is not None, "sessions open only while their scope runs"
        return self._tg.create_task(work)

    async def run(self, work: Awaitable[T]) -> T:
        """`work` (the scenario's executor), then the sessions still open are
        closed (drained); if it fails or is cancelled, they are aborted."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                result = await work
                await asyncio.gather(*(sessions.close() for sessions in self._vus))
            except BaseException:
                for sessions in self._vus:
                    sessions.abort()
                raise
        return result


class VuSessions:
    """One VU's sessions by name, and the ws_* steps it runs on them."""

    def __init__(self, scope: SessionScope, vu: VirtualUser, keeping: frozenset[str],
                 cache: dict[Any, Any]) -> None:
        self.scope = scope
        self.state = scope.state
        self.vu = vu
        self.scenario = vu.scenario
        self.scenario_tags = vu.scenario_tags
        self.keeping = keeping  # sessions a ws_receive or ws_subscribe reads: they keep an inbox
        self.cache = cache  # the scenario's shared sinks
        self.ctx: Mapping[str, Any] = {}  # the VU's current iteration's context
        self.sessions: dict[str, Session] = {}
        self.run_steps = vu.run_steps

    def headers(self, step: WebSocketStep) -> tuple[tuple[str, Renderable], ...]:
        """The step's headers merged over the plan's defaults, as for requests."""
        merged = {name.lower(): (name, tpl) for name, tpl in self.state.plan.headers}
        merged.update({name.lower(): (name, tpl) for name, tpl in step.headers})
        return tuple(merged.values())

    async def step(self, step: Step, ctx: dict[str, Any], responses: dict[str, Any],
                   group: str) -> None:
        match step:
            case WebSocketStep():
                await self._open(step, ctx, responses, group)
            case WsSendStep():
                await self._session(step.session).send(step.message, ctx)
            case WsReceiveStep():
                view: MessageView = await self._session(step.session).receive(step)
                if step.name is not None:
                    view.name = step.name
                    responses[step.name] = view
                ctx["response"] = view
            case WsSubscribeStep():
                await self._session(step.session).subscribe(step, group)
            case WsCloseStep():
                session = self.sessions.get(step.session)
                if session is not None:
                    await session.close(step.code, step.reason)

    async def _open(self, step: WebSocketStep, ctx: dict[str, Any],
                    responses: dict[str, Any], group: str) -> None:
        """A no-op while the session is open (it forgets the messages kept for
        ws_receive, which belong to earlier iterations); else (re)connect and
        run on_open."""
        session = self.sessions.get(step.name)
        if session is not None and session.is_open:
            session.clear_inbox()
            return
        session = self.sessions[step.name] = Session(self, step, group)
        await session.open(ctx)
        try:
            await self.run_steps(step.on_open, ctx, responses, group)
        except StepError:
            await session.close(drain=False)  # half set up: the next websocket step starts over
            raise
        except BaseException:
            session.abort()
            raise

    def _session(self, name: str) -> Session:
        session = self.sessions.get(name)
        if session is None or not session.is_open:
            raise StepError(f"ws session '{name}' is not open", ErrorKind.DISCONNECT)
        return session

    # ------------------------------------------------------------ lifetimes

    async def end_iteration(self) -> None:
        """The iteration is over: its `keep: iteration` sessions close."""
        await asyncio.gather(*(session.close() for session in self.sessions.values()
                               if session.step.keep == "iteration"))

    def abort_iteration(self) -> None:
        for session in self.sessions.values():
            if session.step.keep == "iteration":
                session.abort()

    async def close(self) -> None:
        """The VU is done: every session closes."""
        await asyncio.gather(*(session.close() for session in self.sessions.values()))

    def abort(self) -> None:
        for session in self.sessions.values():
            session.abort()
