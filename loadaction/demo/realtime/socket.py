"""`GET /realtime/v1/websocket?apikey=<key>&vsn=1.0.0`: the Realtime socket.

Refused before the upgrade, as Supabase refuses it: no key or an unknown one
is 401 (the gateway's `{"message": ...}`), a `vsn` other than 1.0.0 is 400
(only the JSON-object serializer is served; Phoenix itself would answer
403). The key comes from the `apikey` query parameter, as realtime-js sends
it (browsers cannot set headers on a WebSocket), or from an `apikey` header.

Each socket is three tasks in one TaskGroup: a reader (frames in, replies
queued), a sender (drains the outbox), and the lag line of the outbox. The
first of them to end ends the socket: the client closed or went away, it
sent nothing for `idle_timeout_s` (Phoenix's timeout; heartbeats keep a
socket open), it sent a frame that is not Phoenix's, or the hub cut it off
as too slow. Close codes: 1000 idle timeout, 1003 a bad frame, 1008 too
slow, 1001 the target shutting down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from loadaction.demo.auth import DemoKeys, Denied, authenticate
from loadaction.demo.faults import Invalid
from loadaction.demo.realtime.channels import Channels
from loadaction.demo.realtime.hub import RealtimeHub
from loadaction.demo.realtime.outbox import Outbox
from loadaction.demo.realtime.protocol import VSN, parse_frame

PATH = "/realtime/v1/websocket"
_MAX_REASON_BYTES = 123  # what fits in a close frame


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str

    def reason_bytes(self) -> bytes:
        cut = self.reason.encode()[:_MAX_REASON_BYTES]
        return cut.decode(errors="ignore").encode()  # never half a character


def _refusal(request: web.Request, keys: DemoKeys) -> web.Response | None:
    vsn = request.query.get("vsn", VSN)
    if vsn != VSN:
        return web.json_response(
            {"message": f"unsupported vsn {vsn!r}: this target serves only vsn=1.0.0 "
                        "(Phoenix's JSON-object serializer)"}, status=400)
    key = request.query.get("apikey") or request.headers.get("apikey")
    outcome = authenticate(keys, {"apikey": key} if key else {})
    if isinstance(outcome, Denied):
        return web.json_response({"message": outcome.message}, status=401)
    return None


async def serve_socket(request: web.Request, keys: DemoKeys, hub: RealtimeHub) -> web.StreamResponse:
    if (refused := _refusal(request, keys)) is not None:
        return refused
    settings = hub.settings
    # No compression (Phoenix's default); `timeout` bounds waiting for the client's close frame.
    ws = web.WebSocketResponse(compress=False, receive_timeout=settings.idle_timeout_s,
                               timeout=settings.close_grace_s)
    if not ws.can_prepare(request).ok:
        return web.json_response({"message": "expected a WebSocket upgrade"}, status=400)
    await ws.prepare(request)
    await Connection(ws, hub, request).serve()
    return ws


class Connection:
    """One client socket; the hub sees it as a Subscriber."""

    def __init__(self, ws: web.WebSocketResponse, hub: RealtimeHub, request: web.Request) -> None:
        self._ws = ws
        self._hub = hub
        self._request = request
        self._outbox = Outbox(hub.settings.outbox_limit, asyncio.get_running_loop().time)
        self._ended = asyncio.Event()
        self._close: Close | None = None  # None: the client closed, or is gone
        self.channels = Channels()

    # --- what the hub calls -------------------------------------------------------

    def deliver(self, frame: str, delay_s: float) -> None:
        if not self._ended.is_set() and not self._outbox.put_change(frame, delay_s):
            self._too_slow()

    def disconnect(self, code: int, reason: str) -> None:
        self._end(Close(code, reason))

    # --- the socket's life ----------------------------------------------------------

    async def serve(self) -> None:
        with self._hub.attached(self):
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._read()), group.create_task(self._send()),
                         group.create_task(self._outbox.release_due())]
                await self._ended.wait()
                for task in tasks:
                    task.cancel()
        await self._close_socket()

    def _end(self, close: Close | None) -> None:
        if not self._ended.is_set():
            self._close = close
            self._ended.set()

    def _too_slow(self) -> None:
        self._hub.cut_off(self)
        self._outbox.clear()
        self._end(Close(WSCloseCode.POLICY_VIOLATION,
                        f"too slow: {self._hub.settings.outbox_limit} messages waiting"))

    def _queue_replies(self, frames: list[str]) -> None:
        for frame in frames:
            if not self._outbox.put(frame):
                self._too_slow()
                return

    async def _read(self) -> None:
        while True:
            try:
                msg = await self._ws.receive()
            except TimeoutError:
                self._end(Close(WSCloseCode.OK, "idle timeout"))
                return
            if msg.type is WSMsgType.TEXT:
                frame = parse_frame(msg.data)
                if isinstance(frame, Invalid):
                    self._end(Close(WSCloseCode.UNSUPPORTED_DATA, frame.message))
                    return
                self._queue_replies(self.channels.receive(frame))
            elif msg.type is WSMsgType.BINARY:
                self._end(Close(WSCloseCode.UNSUPPORTED_DATA, "binary frames are not served "
                                                              "(vsn=1.0.0 is JSON text)"))
                return
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the client is done
                self._end(None)
                return

    async def _send(self) -> None:
        while True:
            frame = await self._outbox.get()
            try:
                await self._ws.send_str(frame)
            except ConnectionError:
                self._end(None)
                return

    async def _close_socket(self) -> None:
        if self._ws.closed:
            return
        close = self._close or Close(WSCloseCode.OK, "")
        try:
            async with asyncio.timeout(self._hub.settings.close_grace_s):
                await self._ws.close(code=close.code, message=close.reason_bytes(), drain=False)
        except TimeoutError:
            # The close frame could not get out (a client that stopped reading): drop the TCP
            # connection rather than keep its unsent bytes.
            if self._request.transport is not None:
                self._request.transport.abort()
