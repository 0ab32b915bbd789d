"""Phoenix channel envelopes as Supabase Realtime speaks them with `vsn=1.0.0`
(Phoenix.Socket.V1.JSONSerializer).

Clients send JSON objects `{topic, event, payload, ref, join_ref}`. The server
answers with `{topic, event, payload, ref}` and no `join_ref`: the V1
serializer leaves it out of everything it sends (Phoenix's serializer test:
"v1 responses must not contain join_ref"), so a V1 client pairs a reply with
its request by `ref` alone. Refs are echoed exactly as the client sent them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loadaction.demo.faults import Invalid

VSN = "1.0.0"
PHOENIX_TOPIC = "phoenix"  # the socket's own topic: heartbeats
TOPIC_PREFIX = "realtime:"

Ref = str | int | None


class ClientEvent(StrEnum):
    JOIN = "phx_join"
    LEAVE = "phx_leave"
    HEARTBEAT = "heartbeat"


class ServerEvent(StrEnum):
    REPLY = "phx_reply"
    CLOSE = "phx_close"
    SYSTEM = "system"
    POSTGRES_CHANGES = "postgres_changes"


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Frame:
    """One message from the client."""

    topic: str
    event: str
    payload: Any
    ref: Ref
    join_ref: Ref


def _is_ref(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int)
                                                       and not isinstance(value, bool))


def parse_frame(text: str) -> Frame | Invalid:
    """Phoenix requires topic, event, payload and ref (ref may be null); join_ref is optional."""
    try:
        doc = json.loads(text)
    except ValueError:
        return Invalid("a frame must be a JSON object")
    if not isinstance(doc, dict):
        return Invalid("a frame must be a JSON object")
    missing = [key for key in ("topic", "event", "payload", "ref") if key not in doc]
    if missing:
        return Invalid(f"frame without {', '.join(missing)}")
    topic, event, ref, join_ref = doc["topic"], doc["event"], doc["ref"], doc.get("join_ref")
    if not isinstance(topic, str) or not isinstance(event, str):
        return Invalid("topic and event must be strings")
    if not _is_ref(ref) or not _is_ref(join_ref):
        return Invalid("ref and join_ref must be strings, integers or null")
    return Frame(topic, event, doc["payload"], ref, join_ref)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode(topic: str, event: str, payload: Any, ref: Ref = None) -> str:
    return _dumps({"topic": topic, "event": event, "payload": payload, "ref": ref})


def reply(topic: str, ref: Ref, status: Status, response: dict[str, Any]) -> str:
    return encode(topic, ServerEvent.REPLY, {"status": status, "response": response}, ref)


def error_reply(topic: str, ref: Ref, reason: str) -> str:
    return reply(topic, ref, Status.ERROR, {"reason": reason})


def close(topic: str, join_ref: Ref) -> str:
    """A channel's end, sent under the ref of the join that opened it."""
    return encode(topic, ServerEvent.CLOSE, {}, join_ref)


def system(topic: str, status: Status, message: str) -> str:
    """How the Postgres extension reports a subscription's outcome, after the join reply."""
    return encode(topic, ServerEvent.SYSTEM, {
        "message": message, "status": status, "extension": "postgres_changes",
        "channel": topic.removeprefix(TOPIC_PREFIX)})


def encode_data(data: dict[str, Any]) -> str:
    """A change's `data`, encoded once however many channels it goes to."""
    return _dumps(data)


def change(topic: str, ids: Sequence[int], data_json: str) -> str:
    """`{"ids": [...], "data": {...}}` with `data` spliced in already encoded,
    as Realtime does (a Jason.Fragment)."""
    return (f'{{"topic":{_dumps(topic)},"event":"{ServerEvent.POSTGRES_CHANGES}",'
            f'"payload":{{"ids":{_dumps(list(ids))},"data":{data_json}}},"ref":null}}')
