"""A subscription: every message of a session matching `where` runs the
subscription's steps and, with `updates`, is matched as an update."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from loadaction.engine.data import DataExhausted
from loadaction.engine.realtime import UpdateWatch, timestamp_seconds
from loadaction.engine.transport import ErrorKind
from loadaction.engine.vu import StepError
from loadaction.engine.websocket.message import MessageView
from loadaction.engine.websocket.metrics import SampleSinks
from loadaction.plan.model import WsSubscribeStep

if TYPE_CHECKING:
    from loadaction.engine.websocket.session import Session


class Subscription:
    def __init__(self, session: Session, step: WsSubscribeStep, group: str) -> None:
        owner = session.owner
        self.session = session
        self.step = step
        self.group = group
        self.state = state = session.state
        tags = {**dict(owner.scenario_tags), "name": step.name, "group": group}
        self.metrics = SampleSinks(state, tuple(sorted(tags.items())), owner.cache,
                                   (id(step), group))
        updates = step.updates
        self.watch: UpdateWatch | None = None
        if updates is not None and updates.write is not None and state.realtime is not None:
            write = (("write", updates.write),)
            self.watch = state.realtime.watch(updates, lambda metric: self.metrics(metric, write))

    async def deliver(self, view: MessageView) -> None:
        step = self.step
        if step.where and not view.satisfies(step.where):
            return
        updates = step.updates
        if self.watch is not None:
            doc = view.json
            if doc is not None:
                found, value = updates.key.first(doc)  # type: ignore[union-attr]
                if found:
                    self.watch.arrived(value, view.arrived)
        elif updates is not None:
            self._timestamped(view)
        if step.steps:
            owner = self.session.owner
            try:  # check, extract, record and set: they never wait
                await owner.run_steps(step.steps, {**owner.ctx, "response": view}, {}, self.group)
            except (StepError, DataExhausted) as exc:
                kind = exc.kind if isinstance(exc, StepError) else ErrorKind.FLOW
                self.state.errors.add(owner.scenario, f"ws_subscribe '{step.name}': {exc}", kind)

    def _timestamped(self, view: MessageView) -> None:
        """Latency from the message's own server timestamp to its arrival here:
        for writers outside the run (it needs the two clocks in step)."""
        path = self.step.updates.timestamp  # type: ignore[union-attr]
        doc = view.json
        found, value = path.first(doc) if doc is not None else (False, None)  # type: ignore[union-attr]
        stamped = timestamp_seconds(value) if found else None
        name = self.step.name
        if stamped is None:
            self.state.errors.add(self.session.owner.scenario,
                                  f"ws_subscribe '{name}': a message has no timestamp at "
                                  f"{path.text} (ISO 8601, or epoch seconds or milliseconds)")  # type: ignore[union-attr]
            return
        latency = time.time() - (time.monotonic() - view.arrived) - stamped  # from its arrival
        if latency < 0:
            self.state.notice(f"ws_subscribe '{name}': messages were stamped later than they "
                              "arrived (the server's clock is ahead of this machine's); their "
                              "realtime_update_latency counts as 0")
            latency = 0.0
        self.metrics("realtime_update_latency").add_us(round(latency * 1_000_000))

    def stop_watching(self) -> None:
        """The session is closing: writes from now on are not expected from it."""
        if self.watch is not None:
            self.state.realtime.remove(self.watch)  # type: ignore[union-attr]

    async def settle(self, stop: asyncio.Event) -> None:
        if self.watch is not None:
            await self.watch.settle(stop)

    def end(self, count_missed: bool) -> None:
        if self.watch is not None:
            self.watch.end(count_missed)
