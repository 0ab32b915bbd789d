"""The channels one socket has joined, and the answers Phoenix and Realtime
give to what a client sends. No I/O: `receive` turns one frame into the
frames to send back, so the rules read (and test) as a table.

- heartbeat on topic `phoenix`: `phx_reply` ok `{}`, same ref.
- `phx_join` on `realtime:<name>`: `phx_reply` ok `{"postgres_changes": [<each
  subscription as sent, plus its id>]}`, then, if it asked for any, the
  `system` message saying whether the subscription stands. A second join of a
  joined topic first closes the old channel (`phx_close` under the old join's
  ref), as Phoenix does. Refused with `phx_reply` error `{"reason": ...}`: a
  topic other than `realtime:*` ("unmatched topic"), `realtime:` alone, more
  than MAX_CHANNELS channels, a payload of the wrong shape.
- `phx_leave`: `phx_reply` ok `{}`, then `phx_close` if the channel was joined.
- anything else on a joined topic (access_token refreshes, broadcast,
  presence): ignored, as Realtime's catch-all does; the socket's key is what
  authenticates it. On any other topic: `phx_reply` error "unmatched topic".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from loadaction.demo.faults import Invalid
from loadaction.demo.realtime import protocol
from loadaction.demo.realtime.changes import Change
from loadaction.demo.realtime.protocol import ClientEvent, Frame, Ref, Status
from loadaction.demo.realtime.subscriptions import (
    Binding,
    binding_id,
    parse_join,
    subscribe,
)

MAX_CHANNELS = 100  # Realtime's default max_channels_per_client
SUBSCRIBED = "Subscribed to PostgreSQL"
UNMATCHED = "unmatched topic"


@dataclass(frozen=True, slots=True)
class Channel:
    topic: str
    join_ref: Ref
    bindings: tuple[Binding, ...]

    def ids_for(self, change: Change) -> list[int]:
        """The ids of this channel's subscriptions that want the change, each once."""
        return list(dict.fromkeys(b.id for b in self.bindings if b.matches(change)))


class Channels:
    def __init__(self, max_channels: int = MAX_CHANNELS) -> None:
        self._joined: dict[str, Channel] = {}
        self._max = max_channels

    @property
    def joined(self) -> int:
        return len(self._joined)

    @property
    def bindings(self) -> int:
        """postgres_changes subscriptions across the joined channels."""
        return sum(len(channel.bindings) for channel in self._joined.values())

    def receive(self, frame: Frame) -> list[str]:
        if frame.topic == protocol.PHOENIX_TOPIC and frame.event == ClientEvent.HEARTBEAT:
            return [protocol.reply(frame.topic, frame.ref, Status.OK, {})]
        if frame.event == ClientEvent.JOIN:
            return self._join(frame)
        if frame.event == ClientEvent.LEAVE:
            return self._leave(frame)
        if frame.topic in self._joined:
            return []
        return [protocol.error_reply(frame.topic, frame.ref, UNMATCHED)]

    def matching(self, change: Change) -> Iterator[tuple[str, list[int]]]:
        """(topic, subscription ids) for each channel that wants the change."""
        for channel in self._joined.values():
            if ids := channel.ids_for(change):
                yield channel.topic, ids

    def _join(self, frame: Frame) -> list[str]:
        out = []
        if (old := self._joined.pop(frame.topic, None)) is not None:
            out.append(protocol.close(old.topic, old.join_ref))
        refused = self._refusal(frame)
        if refused is not None:
            return [*out, protocol.error_reply(frame.topic, frame.ref, refused)]
        request = parse_join(frame.payload)
        if isinstance(request, Invalid):
            return [*out, protocol.error_reply(frame.topic, frame.ref,
                                               f"InvalidJoinPayload: {request.message}")]
        bindings = subscribe(request.postgres_changes)
        self._joined[frame.topic] = Channel(
            frame.topic, frame.join_ref, () if isinstance(bindings, Invalid) else bindings)
        out.append(protocol.reply(frame.topic, frame.ref, Status.OK, {"postgres_changes": [
            {**params, "id": binding_id(params)} for params in request.postgres_changes]}))
        if request.postgres_changes:
            out.append(protocol.system(frame.topic, Status.OK, SUBSCRIBED)
                       if not isinstance(bindings, Invalid)
                       else protocol.system(frame.topic, Status.ERROR, bindings.message))
        return out

    def _refusal(self, frame: Frame) -> str | None:
        if not frame.topic.startswith(protocol.TOPIC_PREFIX):
            return UNMATCHED
        if frame.topic == protocol.TOPIC_PREFIX:
            return "TopicNameRequired: You must provide a topic name"
        if len(self._joined) >= self._max:
            return "ChannelRateLimitReached: Too many channels"
        return None

    def _leave(self, frame: Frame) -> list[str]:
        out = [protocol.reply(frame.topic, frame.ref, Status.OK, {})]
        if (channel := self._joined.pop(frame.topic, None)) is not None:
            out.append(protocol.close(channel.topic, channel.join_ref))
        return out
