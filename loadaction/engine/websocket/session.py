"""One WebSocket connection of a VU: its handshake, its reader, pings and
heartbeats, and how it ends.

A session ends in one of three ways. Closed by the flow (`ws_close`, the end
of its iteration or VU): its subscriptions first stop expecting new updates
and wait for the ones outstanding (unless the run is stopping), then the
closing handshake. Dropped (the server closed it, or the network lost it):
a counted error, its outstanding updates count as missed, and the VU goes
on. Aborted (the VU was interrupted, or the run stops at once): the
connection is dropped and nothing outstanding is counted.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import Mapping
from time import monotonic, perf_counter_ns
from typing import TYPE_CHECKING, Any

from yarl import URL

from loadaction.engine.data import DataExhausted
from loadaction.engine.requests import as_text, render_mapping
from loadaction.engine.safety import CapReached, RequestRefused
from loadaction.engine.status import RunStatus
from loadaction.engine.transport import (
    ErrorKind,
    WebSocket,
    WsConnectRequest,
    WsFrame,
    WsFrameKind,
)
from loadaction.engine.vu import StepError, field_text
from loadaction.engine.websocket.message import MessageView, frame_size, payload_size
from loadaction.engine.websocket.metrics import ERROR_KINDS, SampleSinks, WsError
from loadaction.engine.websocket.subscription import Subscription
from loadaction.plan.model import (
    WebSocketStep,
    WsHeartbeat,
    WsMessage,
    WsReceiveStep,
    WsSubscribeStep,
)

if TYPE_CHECKING:
    from loadaction.engine.websocket.scope import VuSessions

INBOX_MESSAGES = 32
INBOX_BYTES = 256 << 10
"""Messages a session keeps (the oldest go first) for a ws_receive or a
ws_subscribe that comes later: a reply may arrive before the step that waits
for it starts, and the first updates while on_open is still joining."""

_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


class Session:
    def __init__(self, owner: VuSessions, step: WebSocketStep, group: str) -> None:
        self.owner = owner
        self.state = owner.state
        self.step = step
        self.name = step.name
        tags = {**dict(owner.scenario_tags), **dict(step.tags), "name": step.name, "group": group}
        self.metrics = SampleSinks(owner.state, tuple(sorted(tags.items())), owner.cache,
                                   (id(step), group))
        self.socket: WebSocket | None = None
        self.closing = False  # set once it is being closed, or has dropped
        self.ended = False
        self.display = step.name  # the URL without its query, for messages
        self.subscriptions: list[Subscription] = []
        self.inbox: deque[MessageView] = deque()
        self._inbox_bytes = 0
        self._keeps_inbox = step.name in owner.keeping
        self._waiters: list[tuple[Any, asyncio.Future[MessageView]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ref = 0
        self._opened_ns = 0
        self._ping: tuple[bytes, int] | None = None  # the unanswered ping: payload, sent
        self._beats: dict[str, float] = {}  # reply key -> when its heartbeat was sent

    @property
    def is_open(self) -> bool:
        return self.socket is not None and not self.closing

    # ------------------------------------------------------------ opening

    async def open(self, ctx: Mapping[str, Any]) -> None:
        """The handshake, then the background tasks; a failed handshake is a
        StepError (the iteration fails, counted in ws_errors)."""
        state, step = self.state, self.step
        request = self._request(ctx)
        await state.guard.admit()
        handshake = await state.transport.ws_connect(request)
        metrics = self.metrics
        status = (("status", str(handshake.status)),)
        metrics("ws_connecting", status).add_us(handshake.duration_us)
        metrics("ws_sessions", status).add(1)
        metrics("data_sent").add(handshake.sent_bytes)
        metrics("data_received").add(handshake.received_bytes)
        for error in WsError:  # every value has data, so `count==0` budgets are judged
            metrics("ws_errors", (("error", error.value),)).add(0)
        if handshake.socket is None:
            kind = handshake.error_kind or ErrorKind.PROTOCOL
            if kind is ErrorKind.TIMEOUT:
                error = WsError.HANDSHAKE_TIMEOUT
            elif handshake.status or kind is ErrorKind.PROTOCOL:
                error = WsError.HANDSHAKE
            else:
                error = WsError.CONNECT
            self._count(error)
            raise StepError(self._message(handshake.error or "handshake failed"), kind)
        self.socket = handshake.socket
        self._opened_ns = perf_counter_ns()
        spawn = self.owner.scope.spawn
        self._tasks.append(spawn(self._read()))
        if step.ping is not None:
            self._tasks.append(spawn(self._pings(step.ping)))
        if step.heartbeat is not None:
            self._tasks.append(spawn(self._heartbeats(step.heartbeat)))

    def _request(self, ctx: Mapping[str, Any]) -> WsConnectRequest:
        step, state = self.step, self.state
        try:
            text = as_text(step.url.render(ctx))
            query = render_mapping(step.query, ctx)
            headers = {name: as_text(tpl.render(ctx)) for name, tpl in self.owner.headers(step)}
            url = URL(text)
            if not url.is_absolute():
                base = state.plan.target.rstrip("/")
                url = URL(base + ("" if text.startswith("/") else "/") + text)
        except DataExhausted:
            raise
        except Exception as exc:  # noqa: BLE001 - a template error in the user's plan, a bad URL
            raise StepError(f"{step.source}: websocket '{self.name}' could not be rendered: "
                            f"{exc}") from None
        scheme = _SCHEMES.get(url.scheme.lower())
        if scheme is None:
            raise StepError(f"websocket '{self.name}': unsupported scheme '{url.scheme}' "
                            "(expected ws, wss, http or https)")
        if scheme != url.scheme:
            url = url.with_scheme(scheme)
        try:
            state.guard.check_host(url)
        except RequestRefused as exc:
            raise StepError(str(exc), ErrorKind.REFUSED) from None
        if url.user is not None:
            if not any(name.lower() == "authorization" for name in headers):
                pair = f"{url.user}:{url.password or ''}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            url = url.with_user(None)
        if query:
            url = url.update_query({key: as_text(value) for key, value in query.items()})
        self.display = str(url.with_query(None).with_fragment(None))
        timeout = step.timeout if step.timeout is not None else state.plan.timeout
        return WsConnectRequest(url, headers, step.subprotocols, timeout,
                                state.plan.max_body_bytes)

    # ------------------------------------------------------------ the flow's steps

    async def send(self, message: WsMessage, ctx: Mapping[str, Any]) -> None:
        payload, _ = self.render(message, ctx)
        if not self.is_open:
            raise StepError(f"ws session '{self.name}' is not open", ErrorKind.DISCONNECT)
        await self.state.guard.admit()
        try:
            await self._send(payload)
        except ConnectionError as exc:
            raise StepError(self._message(f"send failed: {exc}"), ErrorKind.DISCONNECT) from None

    async def receive(self, step: WsReceiveStep) -> MessageView:
        """The first message matching `until` not taken yet: from those kept
        since the session (re)opened or its VU's iteration began, or the next
        to arrive within the timeout."""
        until = step.until
        for view in self.inbox:
            if view.satisfies(until):
                self.inbox.remove(view)
                self._inbox_bytes -= view.size
                return view
        if not self.is_open:
            raise StepError(f"ws session '{self.name}' is not open", ErrorKind.DISCONNECT)
        entry = (until, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        timeout = step.timeout if step.timeout is not None else self.state.plan.timeout
        try:
            async with asyncio.timeout(timeout):
                return await entry[1]
        except TimeoutError:
            self._count(WsError.RECEIVE_TIMEOUT)
            what = "no message matching until" if until else "no message"
            raise StepError(self._message(f"{what} within {timeout:g}s"),
                            ErrorKind.TIMEOUT) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def subscribe(self, step: WsSubscribeStep, group: str) -> None:
        """Every message matching `where` goes to the subscription: those kept
        for later steps (since the session (re)opened or its VU's iteration
        began; not those a ws_receive took), then every new one. A step that
        subscribes again, each iteration, subscribes once."""
        if any(subscription.step is step for subscription in self.subscriptions):
            return
        subscription = Subscription(self, step, group)
        self.subscriptions.append(subscription)
        for view in list(self.inbox):
            await subscription.deliver(view)

    def clear_inbox(self) -> None:
        self.inbox.clear()
        self._inbox_bytes = 0

    def render(self, message: WsMessage, ctx: Mapping[str, Any]) -> tuple[str | bytes, Any]:
        """The payload to send, and the JSON value it holds (None if not JSON).
        `ws.ref` is fresh for each message, the same within it."""
        self._ref += 1
        scope = {**ctx, "ws": {"ref": str(self._ref), "name": self.name}}
        try:
            value = message.value.render(scope)
            if message.kind == "json":
                return json.dumps(value, separators=(",", ":")), value
            text = as_text(value)
            if message.kind == "binary":
                return base64.b64decode(text, validate=True), None
        except DataExhausted:
            raise
        except Exception as exc:  # noqa: BLE001 - a template error in the user's plan, or not base64
            raise StepError(f"{message.source}: a message of ws session '{self.name}' could not "
                            f"be rendered: {exc}") from None
        return text, None

    async def _send(self, payload: str | bytes) -> None:
        socket = self.socket
        if socket is None:
            raise ConnectionError("not connected")
        if isinstance(payload, bytes):
            await socket.send_bytes(payload)
        else:
            await socket.send_text(payload)
        self.metrics("ws_msgs_sent").add(1)
        self.metrics("data_sent").add(frame_size(payload_size(payload), masked=True))

    # ------------------------------------------------------------ in the background

    async def _read(self) -> None:
        socket = self.socket
        assert socket is not None
        while True:
            frame = await socket.receive()
            kind = frame.kind
            if kind is WsFrameKind.TEXT or kind is WsFrameKind.BINARY:
                await self._arrived(frame.data)
            elif kind is WsFrameKind.PING:
                self.metrics("data_received").add(frame_size(len(frame.data), masked=False))
                try:  # the server's keepalive: answered, not counted against the caps
                    await socket.pong(frame.data)  # type: ignore[arg-type]
                except ConnectionError:
                    continue  # the next frame says how it ended
                self.metrics("data_sent").add(frame_size(len(frame.data), masked=True))
            elif kind is WsFrameKind.PONG:
                self._pong(frame.data)  # type: ignore[arg-type]
            else:
                if not self.closing:
                    self._dropped(frame)
                return

    async def _arrived(self, data: str | bytes) -> None:
        now = monotonic()
        size = payload_size(data)
        self.metrics("ws_msgs_received").add(1)
        self.metrics("data_received").add(frame_size(size, masked=False))
        view = MessageView(self.name, data, size, self.state.label_now(), now)
        if self._beats and self._heartbeat_reply(view, now):
            return  # the heartbeat's own: no step or subscription sees it
        for subscription in self.subscriptions:
            await subscription.deliver(view)
        for entry in self._waiters:
            until, waiter = entry
            if not waiter.done() and view.satisfies(until):
                waiter.set_result(view)
                self._waiters.remove(entry)
                return
        if self._keeps_inbox:
            view.shed()
            inbox = self.inbox
            inbox.append(view)
            self._inbox_bytes += size
            while len(inbox) > INBOX_MESSAGES or self._inbox_bytes > INBOX_BYTES:
                self._inbox_bytes -= inbox.popleft().size

    def _heartbeat_reply(self, view: MessageView, now: float) -> bool:
        doc = view.json
        reply = self.step.heartbeat.reply  # type: ignore[union-attr]
        if doc is None or reply is None:
            return False
        found, value = reply.first(doc)
        sent = self._beats.pop(field_text(value), None) if found else None
        if sent is None:
            return False
        self.metrics("ws_heartbeat_duration").add_us(round((now - sent) * 1_000_000))
        return True

    def _pong(self, data: bytes) -> None:
        self.metrics("data_received").add(frame_size(len(data), masked=False))
        ping = self._ping
        if ping is not None and ping[0] == data:
            self._ping = None
            self.metrics("ws_ping").add_us((perf_counter_ns() - ping[1]) // 1000)

    async def _pings(self, every: float) -> None:
        """A ping every `every` seconds; its pong's round trip is ws_ping (a
        ping still unanswered when the next is due has no sample, as in k6)."""
        sent = 0
        while True:
            await asyncio.sleep(every)
            if not await self._admit():
                return
            sent += 1
            payload = str(sent).encode()
            self._ping = (payload, perf_counter_ns())
            try:
                await self.socket.ping(payload)  # type: ignore[union-attr]
            except ConnectionError:
                return  # the reader says how it ended
            self.metrics("data_sent").add(frame_size(len(payload), masked=True))

    async def _heartbeats(self, beat: WsHeartbeat) -> None:
        """Send `beat` every `every` seconds; a reply not seen within its
        timeout is a counted error, and the session stays open."""
        due = monotonic() + beat.every
        beats = self._beats
        while True:
            wake = due
            if beats:
                wake = min(wake, next(iter(beats.values())) + beat.timeout)
            await asyncio.sleep(max(0.0, wake - monotonic()))
            now = monotonic()
            while beats:
                key, sent = next(iter(beats.items()))
                if sent + beat.timeout > now:
                    break
                del beats[key]
                self._count(WsError.HEARTBEAT)
                self._log(f"no reply to a heartbeat within {beat.timeout:g}s", WsError.HEARTBEAT)
            if now < due:
                continue
            due += beat.every
            if due <= now:  # it woke late: one beat now, the next a full interval on
                due = now + beat.every
            try:
                payload, value = self.render(beat.message, self.owner.ctx)
            except (StepError, DataExhausted) as exc:
                self.state.errors.add(self.owner.scenario, f"heartbeat: {exc}")
                continue
            if not await self._admit():
                return
            sent = monotonic()
            try:
                await self._send(payload)
            except ConnectionError:
                return
            if beat.reply is not None:
                if value is None and isinstance(payload, str):
                    value = _json_or_none(payload)
                found, key_value = beat.reply.first(value) if value is not None else (False, None)
                if found:
                    beats[field_text(key_value)] = sent
                else:
                    self.state.errors.add(self.owner.scenario, self._message(
                        f"the heartbeat has no value at {beat.reply.text} to find its reply by"))

    async def _admit(self) -> bool:
        """Background sends pass the safety caps too; a spent max-requests stops the run."""
        try:
            await self.state.guard.admit()
        except CapReached as exc:
            self.state.control.request_stop(RunStatus.CAPPED, str(exc))
            return False
        return True

    # ------------------------------------------------------------ the end

    async def close(self, code: int = 1000, reason: str = "", drain: bool = True) -> None:
        """Closed by the flow: outstanding updates first arrive or pass their
        deadlines (unless `drain` is off or the run is stopping), then the
        closing handshake."""
        if self.closing or self.ended:
            return
        if drain:
            for subscription in self.subscriptions:
                subscription.stop_watching()
            stop = self.state.control.stop
            for subscription in self.subscriptions:
                await subscription.settle(stop)
            if self.closing or self.ended:
                return  # it dropped meanwhile
        self.closing = True
        socket = self.socket
        if socket is not None:
            await socket.close(code, reason)
        self._end(count_missed=False)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def abort(self) -> None:
        """Drop the connection now; nothing outstanding is counted."""
        if self.ended:
            return
        self.closing = True
        if self.socket is not None:
            self.socket.abort()
        self._end(count_missed=False)

    def _dropped(self, frame: WsFrame) -> None:
        if frame.kind is WsFrameKind.CLOSE:
            error = WsError.CLOSED
            reason = f"closed by the server (code {frame.close_code}"
            reason += f": {frame.error})" if frame.error else ")"
        elif frame.kind is WsFrameKind.ERROR:
            error, reason = WsError.PROTOCOL, f"protocol error: {frame.error}"
        else:
            error, reason = WsError.CLOSED, "connection lost"
        self.closing = True
        self._count(error)
        self._log(reason, error)
        if self.socket is not None:
            self.socket.abort()
        self._end(count_missed=True)

    def _end(self, count_missed: bool) -> None:
        if self.ended:
            return
        self.ended = True
        for subscription in self.subscriptions:
            subscription.end(count_missed)
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(StepError(self._message("ended while a ws_receive waited"),
                                               ErrorKind.DISCONNECT))
        self._waiters.clear()
        if self._opened_ns:
            self.metrics("ws_session_duration").add_us((perf_counter_ns() - self._opened_ns) // 1000)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    # ------------------------------------------------------------ errors

    def _count(self, error: WsError) -> None:
        self.metrics("ws_errors", (("error", error.value),)).add(1)

    def _message(self, reason: str) -> str:
        return f"ws session '{self.name}' ({self.display}): {reason}"

    def _log(self, reason: str, error: WsError) -> None:
        """An error no step raises (it happened in the background): straight to the log."""
        self.state.errors.add(self.owner.scenario, self._message(reason), ERROR_KINDS[error])


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
