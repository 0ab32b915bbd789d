"""WebSocket steps as a plan writes them: `websocket` opens a session,
`ws_send`, `ws_receive`, `ws_subscribe` and `ws_close` talk to it.

Every ws_* step knows at load time which session it talks to (its
`session:`, or the one opened last before it in the flow), so a misspelt
session fails the plan instead of every iteration. `ws.ref`, a per-session
counter fresh for each rendered message, exists only in the messages a
session sends; anywhere else it is an unknown name, as any other.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from loadaction.errors import PlanError, Source, did_you_mean
from loadaction.plan.fields import (
    check_keys,
    expect_choice,
    expect_duration,
    expect_int,
    expect_map,
    expect_seq,
    expect_str,
    expect_text,
    required,
    string_pairs,
)
from loadaction.plan.hosts import check_url_host
from loadaction.plan.jsonpath import CompiledPath, compile_path
from loadaction.plan.model import (
    CheckStep,
    Condition,
    ExtractStep,
    Flow,
    GroupStep,
    IfStep,
    JsonPath,
    MapRecordStep,
    SessionKeep,
    Step,
    UpdatesSpec,
    WebSocketStep,
    WsCloseStep,
    WsHeartbeat,
    WsMessage,
    WsMessageKind,
    WsReceiveStep,
    WsSendStep,
    WsSubscribeStep,
)
from loadaction.plan.requests import parse_headers
from loadaction.plan.responses import parse_check
from loadaction.plan.source import Entry, Map, Node
from loadaction.plan.templates import Templates, is_template

WS_STEP_KINDS = ("websocket", "ws_send", "ws_receive", "ws_subscribe", "ws_close")
ON_OPEN_KINDS = ("ws_send", "ws_receive", "ws_subscribe", "check", "extract", "record", "set",
                 "think")
"""Steps `on_open` may hold: they talk to the session (requests belong in the flow)."""
SUBSCRIPTION_KINDS = ("check", "extract", "record", "set")
"""Steps a subscription runs per message: none of them waits."""
KEEP_CHOICES: tuple[SessionKeep, ...] = ("iteration", "vu")

WEBSOCKET_KEYS = ("name", "url", "query", "headers", "subprotocols", "timeout", "keep", "ping",
                  "heartbeat", "on_open", "tags")
MESSAGE_KEYS: tuple[WsMessageKind, ...] = ("text", "json", "binary")
HEARTBEAT_KEYS = ("every", *MESSAGE_KEYS, "reply", "timeout")
SEND_KEYS = ("session", *MESSAGE_KEYS)
RECEIVE_KEYS = ("session", "name", "until", "timeout")
SUBSCRIBE_KEYS = ("session", "name", "where", "steps", "updates")
UPDATES_KEYS = ("write", "write_key", "key", "timestamp", "deadline")
CLOSE_KEYS = ("session", "code", "reason")

WS_ROOT = "ws"
"""The template root of a session's sends: `ws.ref`, `ws.name`."""
MIN_INTERVAL_S = 0.1
"""The shortest `ping` and heartbeat `every`: more often is a flood, not a keepalive."""
MAX_DEADLINE_S = 600.0
"""The longest update `deadline`: expected updates are held in memory that long."""
DEFAULT_DEADLINE_S = 5.0
DEFAULT_HEARTBEAT_TIMEOUT_S = 10.0
MAX_CLOSE_REASON_BYTES = 123
"""A close frame carries at most 125 bytes: the code's two, then the reason."""

WEBSOCKET_METRICS: Mapping[str, str] = {
    "ws_connecting": "a websocket step",
    "ws_sessions": "a websocket step",
    "ws_session_duration": "a websocket step",
    "ws_msgs_sent": "a websocket step",
    "ws_msgs_received": "a websocket step",
    "ws_errors": "a websocket step",
    "ws_ping": "a websocket step with ping",
    "ws_heartbeat_duration": "a websocket heartbeat with reply",
    "realtime_update_latency": "a ws_subscribe with updates",
    "realtime_updates_missed": "a ws_subscribe with updates from a write",
}
"""Built-in metrics only WebSocket steps record, and what records each."""

_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


@dataclass
class SessionScope:
    """The sessions one flow opens, in order, and the one a ws_* step without
    `session:` talks to (the last opened before it)."""

    flow: str
    opened: dict[str, Source] = field(default_factory=dict)
    current: str | None = None
    ahead: list[tuple[str, Source]] = field(default_factory=list)  # named before opened

    def session(self, node: Map, kind: str) -> str:
        given = node.get("session")
        if given is None:
            if self.current is None:
                raise PlanError(f"{kind}: no websocket step before it opens a session",
                                node.source, "open one with a websocket step first")
            return self.current
        name = expect_str(given, "session")
        if name not in self.opened:
            self.ahead.append((name, given.source))  # checked once the flow is read
        return name

    def check(self) -> None:
        for name, source in self.ahead:
            if name in self.opened:
                raise PlanError(f"session: '{name}' is used before the websocket step that opens "
                                f"it (line {self.opened[name].line})", source)
            raise PlanError(f"session: flow '{self.flow}' opens no session named '{name}'",
                            source, did_you_mean(name, self.opened)
                            or "a websocket step's name opens a session")


NestedSteps = Callable[[Node, tuple[str, ...]], tuple[Step, ...]]
"""Parses a nested list of steps, allowing only the given kinds."""


class WebSocketSteps:
    """Parses the ws_* steps of every flow of one plan; `writes` collects the
    request names `updates` wait for, with the write_key path each reads from
    the response (the names are checked once every flow is read)."""

    def __init__(self, templates: Templates, allowed_hosts: Collection[str]):
        self.templates = templates
        self.allowed_hosts = allowed_hosts
        self.writes: list[tuple[str, Source, JsonPath]] = []

    def parse(self, kind: str, node: Node, sessions: SessionScope, nested: NestedSteps) -> Step:
        if kind == "websocket":
            return self._open(node, sessions, nested)
        mapping = expect_map(node, kind)
        if kind == "ws_send":
            check_keys(mapping, SEND_KEYS, "in ws_send")
            return WsSendStep(sessions.session(mapping, kind), self._message(mapping, kind),
                              mapping.source)
        if kind == "ws_receive":
            return self._receive(mapping, sessions)
        if kind == "ws_subscribe":
            return self._subscribe(mapping, sessions, nested)
        return _close(mapping, sessions)

    def _open(self, node: Node, sessions: SessionScope, nested: NestedSteps) -> WebSocketStep:
        spec = expect_map(node, "websocket")
        check_keys(spec, WEBSOCKET_KEYS, "in websocket")
        url_node = required(spec, "url", "in websocket")
        url_text = expect_str(url_node, "url")
        _check_url(url_text, url_node.source, self.allowed_hosts)
        name_node = spec.get("name")
        name = expect_str(name_node, "name") if name_node is not None else url_text
        if name in sessions.opened:
            raise PlanError(f"name: session '{name}' is already opened at line "
                            f"{sessions.opened[name].line}; give this one another name",
                            (name_node or url_node).source)
        sessions.opened[name] = spec.source
        sessions.current = name  # on_open talks to it, and so do the steps after it
        keep = spec.get("keep")
        query, timeout, ping = (spec.get(key) for key in ("query", "timeout", "ping"))
        heartbeat, on_open, tags = (spec.get(key) for key in ("heartbeat", "on_open", "tags"))
        return WebSocketStep(
            name=name,
            url=self.templates.compile_string(url_text, url_node.source),
            source=spec.source,
            query=self.templates.compile_node(expect_map(query, "query")) if query is not None else None,
            headers=parse_headers(spec.get("headers"), self.templates),
            subprotocols=_subprotocols(spec.get("subprotocols")),
            timeout=expect_duration(timeout, "timeout", positive=True) if timeout is not None else None,
            keep=expect_choice(keep, "keep", KEEP_CHOICES) if keep is not None else "iteration",  # type: ignore[arg-type]
            ping=_interval(ping, "ping") if ping is not None else None,
            heartbeat=self._heartbeat(heartbeat) if heartbeat is not None else None,
            on_open=nested(on_open, ON_OPEN_KINDS) if on_open is not None else (),
            tags=string_pairs(tags, "tags") if tags is not None else (),
        )

    def _heartbeat(self, node: Node) -> WsHeartbeat:
        heartbeat = expect_map(node, "heartbeat")
        check_keys(heartbeat, HEARTBEAT_KEYS, "in heartbeat")
        every = _interval(required(heartbeat, "every", "in heartbeat"), "every")
        message = self._message(heartbeat, "heartbeat")
        reply_node, timeout_node = heartbeat.get("reply"), heartbeat.get("timeout")
        reply = None
        if reply_node is not None:
            if message.kind == "binary":
                raise PlanError("reply: a binary heartbeat has no JSON to find its reply by",
                                reply_node.source, "send it as text or json")
            reply = _path(reply_node, "reply")
        elif timeout_node is not None:
            raise PlanError("timeout: a heartbeat without 'reply' waits for no reply",
                            timeout_node.source, "add reply: the JSON path its reply echoes")
        timeout = (expect_duration(timeout_node, "timeout", positive=True)
                   if timeout_node is not None else DEFAULT_HEARTBEAT_TIMEOUT_S)
        return WsHeartbeat(every, message, reply, timeout, heartbeat.source)

    def _message(self, node: Map, what: str) -> WsMessage:
        """Exactly one of `text`, `json` or `binary` (base64); `ws` is in its
        context, and only there."""
        given = [kind for kind in MESSAGE_KEYS if kind in node]
        if len(given) != 1:
            got = f", got {' and '.join(given)}" if given else ""
            raise PlanError(f"{what} needs exactly one of text, json or binary{got}", node.source)
        kind = given[0]
        value_node = node.entries[kind].value
        references = self.templates.references
        first = len(references)
        if kind == "json":
            value = self.templates.compile_node(value_node)
        else:
            text = expect_text(value_node, kind)
            if kind == "binary" and not is_template(text):
                _check_base64(text, value_node.source)
            value = self.templates.compile_string(text, value_node.source)
        references[first:] = [ref for ref in references[first:] if ref.root != WS_ROOT]
        return WsMessage(kind, value, value_node.source)

    def _receive(self, receive: Map, sessions: SessionScope) -> WsReceiveStep:
        check_keys(receive, RECEIVE_KEYS, "in ws_receive")
        session = sessions.session(receive, "ws_receive")
        name, timeout = receive.get("name"), receive.get("timeout")
        return WsReceiveStep(
            session=session,
            name=expect_str(name, "name") if name is not None else None,
            until=_conditions(receive.get("until"), "until", "to take the next message"),
            timeout=expect_duration(timeout, "timeout", positive=True) if timeout is not None else None,
            source=receive.source,
        )

    def _subscribe(self, subscribe: Map, sessions: SessionScope,
                   nested: NestedSteps) -> WsSubscribeStep:
        check_keys(subscribe, SUBSCRIBE_KEYS, "in ws_subscribe")
        session = sessions.session(subscribe, "ws_subscribe")
        name = expect_str(required(subscribe, "name", "in ws_subscribe"), "name")
        steps_node, updates_node = subscribe.get("steps"), subscribe.get("updates")
        steps = nested(steps_node, SUBSCRIPTION_KINDS) if steps_node is not None else ()
        for step in steps:
            response = getattr(step, "response", None)
            if response is not None:
                raise PlanError("response: the steps of ws_subscribe read each message it "
                                "receives; they cannot name another response",
                                step.source)  # type: ignore[union-attr]
            check_message_subjects(step)
        updates = self._updates(updates_node) if updates_node is not None else None
        if not steps and updates is None:
            raise PlanError(f"ws_subscribe '{name}' does nothing: give it steps or updates",
                            subscribe.source)
        return WsSubscribeStep(session, name,
                               _conditions(subscribe.get("where"), "where", "for every message"),
                               steps, subscribe.source, updates)

    def _updates(self, node: Node) -> UpdatesSpec:
        updates = expect_map(node, "updates")
        check_keys(updates, UPDATES_KEYS, "in updates")
        timestamp = updates.get("timestamp")
        if timestamp is not None:
            for key in ("write", "write_key", "key", "deadline"):
                if key in updates:
                    raise PlanError(f"updates: '{key}' and 'timestamp' do not go together",
                                    updates.key_source(key),
                                    "timestamp measures from each message's own server time, "
                                    "for writers outside the run; write, write_key and key "
                                    "from a request of the run")
            return UpdatesSpec(updates.source, timestamp=_path(timestamp, "timestamp"))
        write = updates.get("write")
        if write is None:
            raise PlanError("updates needs 'write' (with write_key and key) or 'timestamp'",
                            updates.source)
        name = expect_str(write, "write")
        write_key = _path(required(updates, "write_key", "in updates"), "write_key")
        self.writes.append((name, write.source, write_key))
        deadline = updates.get("deadline")
        return UpdatesSpec(
            updates.source, write=name, write_key=write_key,
            key=_path(required(updates, "key", "in updates"), "key"),
            deadline=_deadline(deadline) if deadline is not None else DEFAULT_DEADLINE_S,
        )


def check_update_writes(writes: Iterable[tuple[str, Source, JsonPath]],
                        requests: Collection[str]) -> None:
    """Every `updates.write` names a request of the plan (in any flow)."""
    for name, source, _ in writes:
        if name not in requests:
            raise PlanError(f"write: no request of the plan is named '{name}'", source,
                            did_you_mean(name, requests)
                            or "write names a request's `name`, in any flow")


def check_message_subjects(step: Step) -> None:
    """A step that reads a WebSocket message may not test its status or headers."""
    subjects: list[tuple[str, Source]] = []
    if isinstance(step, CheckStep):
        subjects = [(condition.subject, condition.source) for condition in step.conditions]
    elif isinstance(step, ExtractStep):
        subjects = [(item.subject, step.source) for item in step.items]
    elif isinstance(step, MapRecordStep):
        subjects = [(step.subject, step.source)]
    for subject, source in subjects:
        if subject in ("status", "header"):
            raise PlanError(f"{subject}: a WebSocket message has no {subject}", source,
                            "read its json or body")


def walk(steps: Iterable[Step]) -> Iterator[Step]:
    """Every step, and every step nested in it (groups, ifs, on_open, subscriptions)."""
    for step in steps:
        yield step
        if isinstance(step, GroupStep | WsSubscribeStep):
            yield from walk(step.steps)
        elif isinstance(step, IfStep):
            yield from walk(step.steps)
            yield from walk(step.otherwise)
        elif isinstance(step, WebSocketStep):
            yield from walk(step.on_open)


def produced_metrics(flows: Iterable[Flow]) -> set[str]:
    """The WebSocket metrics these flows can record."""
    produced: set[str] = set()
    for flow in flows:
        for step in walk(flow.steps):
            if isinstance(step, WebSocketStep):
                produced.update(name for name, what in WEBSOCKET_METRICS.items()
                                if what == "a websocket step")
                if step.ping is not None:
                    produced.add("ws_ping")
                if step.heartbeat is not None and step.heartbeat.reply is not None:
                    produced.add("ws_heartbeat_duration")
            elif isinstance(step, WsSubscribeStep) and step.updates is not None:
                produced.add("realtime_update_latency")
                if step.updates.write is not None:
                    produced.add("realtime_updates_missed")
    return produced


def _check_url(text: str, source: Source, allowed_hosts: Collection[str]) -> None:
    """ws(s)://, http(s):// or relative; a literal host must be allowed."""
    scheme, sep, rest = text.partition("://")
    if not sep or is_template(scheme):
        return  # relative to the target, or computed
    mapped = _SCHEMES.get(scheme.lower())
    if mapped is None:
        raise PlanError(f"url: unsupported scheme '{scheme}' (expected ws, wss, http or https)",
                        source)
    check_url_host(f"{mapped}://{rest}", source, allowed_hosts)


def _subprotocols(node: Node | None) -> tuple[str, ...]:
    if node is None:
        return ()
    names = []
    for item in expect_seq(node, "subprotocols").items:
        name = expect_str(item, "subprotocols")
        if any(c.isspace() or c in ',;"' for c in name):
            raise PlanError(f"subprotocols: '{name}' is not a protocol token", item.source)
        names.append(name)
    return tuple(names)


def _conditions(node: Node | None, what: str, absent: str) -> tuple[Condition, ...]:
    """JSON path (`$...`) and `body` matchers, as in a check; all must hold."""
    if node is None:
        return ()
    mapping = expect_map(node, what)
    if not mapping.entries:
        raise PlanError(f"{what}: no conditions", node.source, f"leave it out {absent}")
    paths: dict[str, Entry] = {}
    body: dict[str, Entry] = {}
    for key, entry in mapping.items():
        if key == "body":
            body[key] = entry
        elif key.startswith("$"):
            paths[key] = entry
        else:
            raise PlanError(f"{what}: '{key}' is neither a JSON path (they start with '$') nor "
                            "'body'", entry.key_source, f"did you mean '$.{key}'?")
    check: dict[str, Entry] = {}
    if paths:
        check["json"] = Entry(node.source, Map(paths, node.source))
    check.update(body)
    return parse_check(Map(check, node.source)).conditions


def _path(node: Node, what: str) -> CompiledPath:
    return compile_path(expect_str(node, what), node.source)


def _interval(node: Node, what: str) -> float:
    seconds = expect_duration(node, what, positive=True)
    if seconds < MIN_INTERVAL_S:
        raise PlanError(f"{what}: {seconds * 1000:g}ms is shorter than "
                        f"{MIN_INTERVAL_S * 1000:g}ms, the shortest keepalive interval",
                        node.source, "send load with ws_send steps instead")
    return seconds


def _deadline(node: Node) -> float:
    seconds = expect_duration(node, "deadline", positive=True)
    if seconds > MAX_DEADLINE_S:
        raise PlanError(f"deadline: {seconds:g}s is longer than {MAX_DEADLINE_S:g}s, the "
                        "longest an expected update is waited for", node.source,
                        "expected updates are held in memory until their deadline")
    return seconds


def _close(close: Map, sessions: SessionScope) -> WsCloseStep:
    check_keys(close, CLOSE_KEYS, "in ws_close")
    session = sessions.session(close, "ws_close")
    code_node, reason_node = close.get("code"), close.get("reason")
    code = expect_int(code_node, "code") if code_node is not None else 1000
    if code != 1000 and not 3000 <= code <= 4999:
        raise PlanError(f"code: a client cannot close with {code}", code_node.source,  # type: ignore[union-attr]
                        "use 1000 (normal closure) or an application code from 3000 to 4999")
    reason = expect_text(reason_node, "reason") if reason_node is not None else ""
    if len(reason.encode()) > MAX_CLOSE_REASON_BYTES:
        raise PlanError(f"reason: longer than {MAX_CLOSE_REASON_BYTES} bytes, what a close "
                        "frame can carry", reason_node.source)  # type: ignore[union-attr]
    return WsCloseStep(session, code, reason, close.source)


def _check_base64(text: str, source: Source) -> None:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PlanError("binary: not valid base64", source,
                        "binary messages are written in base64") from None

