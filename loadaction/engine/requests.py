"""Turns a RequestSpec into bytes on the wire and samples in the registry.

Everything that does not change between iterations (merged header templates,
tag sets, the sinks a sample lands in) is computed once per request spec and
scenario, so the per-request cost is rendering, one dict lookup and a few adds.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from yarl import URL

from loadaction.engine.layers import Deliver, Outgoing
from loadaction.engine.response import ResponseView
from loadaction.engine.state import RunState
from loadaction.engine.transport import CONNECTION_OWNER, ErrorKind, HttpResult, PreparedRequest
from loadaction.metrics.registry import Tags
from loadaction.metrics.sinks import CounterSink, RateSink, TrendSink
from loadaction.metrics.series import LiveBucket
from loadaction.plan.model import Renderable, RequestSpec
from loadaction.plan.templates import Static

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10  # k6's default maxRedirects


class RequestSinks:
    """The sinks one (request, scenario, group, status) combination feeds."""

    __slots__ = ("reqs", "duration", "blocked", "connecting", "tls", "sending", "waiting",
                 "receiving", "failed", "sent", "received", "expected")

    def __init__(self, state: RunState, tags: Tags, expected: bool) -> None:
        reg = state.registry
        self.expected = expected
        self.reqs: CounterSink = reg.sink("http_reqs", tags)  # type: ignore[assignment]
        self.duration: TrendSink = reg.sink("http_req_duration", tags)  # type: ignore[assignment]
        self.blocked: TrendSink = reg.sink("http_req_blocked", tags)  # type: ignore[assignment]
        self.connecting: TrendSink = reg.sink("http_req_connecting", tags)  # type: ignore[assignment]
        self.tls: TrendSink = reg.sink("http_req_tls_handshaking", tags)  # type: ignore[assignment]
        self.sending: TrendSink = reg.sink("http_req_sending", tags)  # type: ignore[assignment]
        self.waiting: TrendSink = reg.sink("http_req_waiting", tags)  # type: ignore[assignment]
        self.receiving: TrendSink = reg.sink("http_req_receiving", tags)  # type: ignore[assignment]
        self.failed: RateSink = reg.sink("http_req_failed", tags)  # type: ignore[assignment]
        self.sent: CounterSink = reg.sink("data_sent", tags)  # type: ignore[assignment]
        self.received: CounterSink = reg.sink("data_received", tags)  # type: ignore[assignment]


class PreparedSpec:
    """Per (spec, scenario, group): the header templates merged over the plan's
    defaults and the tags every sample of this request carries. A request
    whose every part is a constant renders the same each time: `request`
    keeps the first one built, and later iterations send it again."""

    __slots__ = ("spec", "headers", "base_tags", "sinks", "state", "constant", "request",
                 "realtime")

    def __init__(self, state: RunState, spec: RequestSpec, scenario_tags: Tags, group: str) -> None:
        self.state = state
        self.spec = spec
        merged: dict[str, tuple[str, Renderable]] = {
            k.lower(): (k, v) for k, v in state.plan.headers
        }
        merged.update({k.lower(): (k, v) for k, v in spec.headers})
        self.headers = tuple(merged.values())
        tags = dict(scenario_tags)
        tags.update(spec.tags)
        tags.update(name=spec.name, method=spec.method, group=group)
        self.base_tags = tuple(sorted(tags.items()))
        self.sinks: dict[int | tuple[int, str], RequestSinks] = {}
        parts = (spec.url, spec.query, spec.json, spec.form, spec.body, *(t for _, t in self.headers))
        self.constant = all(p is None or isinstance(p, Static) for p in parts)
        self.request: PreparedRequest | None = None
        # the run's update matcher when a subscription waits for this request's writes
        realtime = state.realtime
        self.realtime = realtime if realtime is not None and spec.name in realtime.writes else None

    def sinks_for(self, status: int, label: str | None) -> RequestSinks:
        """The sinks for a status (and, with an attribution, its send-time label)."""
        key = status if label is None else (status, label)
        sinks = self.sinks.get(key)
        if sinks is None:
            expect = self.spec.expect
            expected = status in expect if expect is not None else 200 <= status < 400
            tags = [*self.base_tags, ("status", str(status)),
                    ("expected_response", "true" if expected else "false")]
            if label is not None:
                tags.append((self.state.attribution.key, label))  # type: ignore[union-attr]
            sinks = self.sinks[key] = RequestSinks(self.state, tuple(sorted(tags)), expected)
        return sinks


def render_mapping(tpl: Renderable | None, ctx: Mapping[str, Any]) -> Mapping[str, Any]:
    """A `query` or `form` template's mapping (empty when there is none)."""
    if tpl is None:
        return {}
    value = tpl.render(ctx)
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    return value


def as_text(value: Any) -> str:
    """A rendered value as the text a URL, header or message carries."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class Requester:
    """Sends one VU's requests; owned by the VU, so it can cache freely."""

    def __init__(self, state: RunState, scenario: str, bucket: LiveBucket) -> None:
        self.state = state
        self.scenario = scenario
        self.bucket = bucket
        self.target = URL(state.plan.target)
        self._urls: dict[str, tuple[URL, str, str | None]] = {}

    def build(self, prepared: PreparedSpec, ctx: Mapping[str, Any]) -> PreparedRequest:
        """The request to send; rendered afresh unless every part is constant
        (nothing downstream mutates a PreparedRequest, so one can be resent)."""
        if prepared.request is not None:
            return prepared.request
        spec = prepared.spec
        url, text, basic_auth = self._url(spec.url.render(ctx))
        if spec.query is not None:
            query = render_mapping(spec.query, ctx)
            if query:
                url = url.update_query({k: as_text(v) for k, v in query.items()})
                text = str(url)
        headers = {name: as_text(tpl.render(ctx)) for name, tpl in prepared.headers}
        if basic_auth is not None and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = basic_auth  # an explicit Authorization header wins
        body: bytes | None = None
        if spec.json is not None:
            body = json.dumps(spec.json.render(ctx), separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        elif spec.form is not None:
            form = render_mapping(spec.form, ctx)
            body = urlencode({k: as_text(v) for k, v in form.items()}).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif spec.body is not None:
            raw = spec.body.render(ctx)
            body = raw if isinstance(raw, bytes) else as_text(raw).encode()
        timeout = spec.timeout if spec.timeout is not None else self.state.plan.timeout
        req = PreparedRequest(spec.method, text, headers, body, timeout, url)
        if prepared.constant:
            prepared.request = req
        return req

    def _url(self, text: str) -> tuple[URL, str, str | None]:
        """The absolute URL for a rendered `url`, parsed and as text, and the
        Basic authorization its `user:password@` stood for (taken out of the
        URL, so no error message or transport ever carries it); all cached,
        as most plans send a handful of distinct URLs."""
        known = self._urls.get(text)
        if known is None:
            url = URL(text)
            if not url.is_absolute():
                base = str(self.target).rstrip("/")
                url = URL(base + ("" if text.startswith("/") else "/") + text)
            self.state.guard.check_host(url)
            basic = None
            if url.user is not None:
                pair = f"{url.user}:{url.password or ''}".encode()
                basic = "Basic " + base64.b64encode(pair).decode("ascii")
                url = url.with_user(None)
            known = (url, str(url), basic)
            if len(self._urls) < 256:
                self._urls[text] = known
        return known

    async def send(self, prepared: PreparedSpec, req: PreparedRequest) -> ResponseView:
        """Send, following redirects only to allowed hosts, and record every hop.

        The attribution label (chaos: the phase) is fixed here, once the caps
        have admitted the request and just before it goes out: every sample
        of this request and of checks on its answer carries it, however long
        the answer takes."""
        state = self.state
        await state.guard.admit()
        CONNECTION_OWNER.set(self)  # this VU's connections (a per-VU pool keys by it)
        label: str | None = None
        if state.layers or state.attribution is not None:
            sent_at = state.clock.elapsed()
            if state.attribution is not None:
                label = state.attribution.label_at(sent_at)
            result = await self._send_through_layers(prepared, req, sent_at, label)
        else:
            result = await state.transport.send(req)
        self.record(prepared, result, label)
        if result.status in REDIRECTS:
            result = await self._follow(prepared, req, result, label)
        if result.error:
            state.errors.add(self.scenario, result.error, result.error_kind or ErrorKind.PROTOCOL)
        view = ResponseView(prepared.spec.name, result, label)
        if prepared.realtime is not None and prepared.sinks_for(result.status, label).expected:
            prepared.realtime.responded(prepared.spec.name, view.json)  # a watched write
        return view

    async def _send_through_layers(self, prepared: PreparedSpec, req: PreparedRequest,
                                   sent_at: float, label: str | None) -> HttpResult:
        """Through the layers that apply to this request at its send time;
        extra deliveries they make are admitted by the safety caps and
        recorded like any request."""
        state = self.state
        name = prepared.spec.name
        active = [layer for layer in state.layers if layer.applies(name, sent_at)]
        if not active:
            return await state.transport.send(req)
        tags = prepared.base_tags
        if label is not None:
            tags = tuple(sorted((*tags, (state.attribution.key, label))))  # type: ignore[union-attr]
        outgoing = Outgoing(name, sent_at, tags, state.transport, state.registry,
                            lambda extra: self.record(prepared, extra, label), state.guard.admit)
        deliver: Deliver = state.transport.send
        for layer in reversed(active):
            deliver = layer.wrap(deliver, outgoing)
        return await deliver(req)

    async def _follow(self, prepared: PreparedSpec, req: PreparedRequest,
                      result: HttpResult, label: str | None) -> HttpResult:
        """Follow `result`'s redirect and the ones after it (up to MAX_REDIRECTS);
        the last response is the request's."""
        guard = self.state.guard
        for hop in range(MAX_REDIRECTS + 1):
            location = result.headers.get("Location") if result.status in REDIRECTS else None
            if location is None:
                break
            url = URL(req.url).join(URL(location))
            if not guard.allows(url):
                self.state.notice(
                    f"redirect from {URL(req.url).host} to {url.host} not followed: host not allowed"
                )
                break
            if result.status == 303 or (result.status in (301, 302) and req.method == "POST"):
                req = PreparedRequest("GET", str(url), {k: v for k, v in req.headers.items()
                                                          if k.lower() != "content-type"}, None,
                                      req.timeout, url)
            else:
                req = PreparedRequest(req.method, str(url), req.headers, req.body, req.timeout, url)
            if hop == MAX_REDIRECTS:
                break  # k6's limit: the last redirect is the response
            await guard.admit()
            result = await self.state.transport.send(req)
            self.record(prepared, result, label)
        return result

    def record(self, prepared: PreparedSpec, result: HttpResult, label: str | None) -> None:
        sinks = ((prepared.sinks.get(result.status) if label is None else None)
                 or prepared.sinks_for(result.status, label))
        duration = result.duration_us
        sinks.reqs.count += 1
        sinks.duration.add_us(duration)
        sinks.blocked.add_us(result.blocked_us)
        sinks.connecting.add_us(result.connecting_us)
        sinks.tls.add_us(result.tls_us)
        sinks.sending.add_us(result.sending_us)
        sinks.waiting.add_us(result.waiting_us)
        sinks.receiving.add_us(result.receiving_us)
        sinks.failed.add(not sinks.expected)
        sinks.sent.count += result.sent_bytes
        sinks.received.count += result.received_bytes
        bucket = self.bucket
        bucket.reqs += 1
        bucket.durations.add_us(duration)
        if not sinks.expected:
            bucket.failed += 1
