"""Client-side chaos faults over real sockets on 127.0.0.1: against the demo
target (webhook signatures and idempotency, checkout idempotency keys) and
against small recording aiohttp servers where a test must see exactly what
arrived and in which order."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from loadaction.chaos.client import ClientFaults
from loadaction.chaos.client_reorder import shuffled
from loadaction.chaos.client_tamper import STALE_AGE_S, tamper
from loadaction.demo import DemoTarget, Faults, running_target
from loadaction.demo.faults import HEALTHY
from loadaction.demo.stripe_signature import verify
from loadaction.engine.layers import Outgoing
from loadaction.engine.transport import ErrorKind, HttpResult, PreparedRequest
from loadaction.engine.transports.aiohttp import AiohttpTransport
from loadaction.errors import Source
from loadaction.metrics.registry import CHAOS_METRICS, Registry
from loadaction.plan.model import (
    AbortFault,
    DuplicateFault,
    Fault,
    FaultAction,
    ReorderFault,
    TamperFault,
    TimeoutRetryFault,
)
from loadaction.plan.templates import Static
from tests.stripe_header import sign_header

SOURCE = Source("plan.yml", 1)
TAGS = (("name", "hook"), ("scenario", "s"))


def fault(action: FaultAction, name: str = "f") -> Fault:
    return Fault(name=name, action=action, at=0.0, duration=60.0, source=SOURCE)


@dataclass
class Harness:
    """The chaos client as the engine drives it (the request-layer port), with what it recorded."""

    registry: Registry = field(default_factory=lambda: Registry(CHAOS_METRICS))
    transport: AiohttpTransport = field(default_factory=AiohttpTransport)
    extras: list[HttpResult] = field(default_factory=list)
    admitted: int = 0
    client: ClientFaults = field(init=False)

    def __post_init__(self) -> None:
        self.client = ClientFaults(random.Random(7), render=lambda tpl: tpl.render({}))

    async def _admit(self) -> None:
        self.admitted += 1

    async def send(self, req: PreparedRequest, name: str = "hook") -> HttpResult:
        if not self.client.applies(name, 0.0):
            return await self.transport.send(req)
        outgoing = Outgoing(name, 0.0, TAGS, self.transport, self.registry,
                            self.extras.append, self._admit)
        return await self.client.wrap(self.transport.send, outgoing)(req)

    def count(self, metric: str, fault_name: str = "f") -> float | None:
        sink = self.registry.select(metric, (("fault", fault_name),))
        return None if sink is None else sink.count  # type: ignore[attr-defined]


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        await h.transport.close()


def post(url: str, body: bytes, headers: dict[str, str] | None = None,
         timeout: float = 5.0) -> PreparedRequest:
    return PreparedRequest("POST", url, {"Content-Type": "application/json", **(headers or {})},
                           body, timeout)


# --- a recording server -------------------------------------------------------------

@dataclass
class Recorder:
    url: str
    seen: list[tuple[str, bytes, Mapping[str, str]]]

    async def wait_for(self, n: int, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


@asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    """Echoes each body back and records (path, body, headers) on arrival.
    `/once` answers 200 to a body's first delivery and 409 after that;
    `/anything` accepts every request."""
    seen: list[tuple[str, bytes, Mapping[str, str]]] = []
    first_seen: set[bytes] = set()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.path, body, request.headers.copy()))  # case-insensitive
        if request.path == "/once":
            status = 409 if body in first_seen else 200
            first_seen.add(body)
            return web.Response(status=status, body=body)
        return web.Response(body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Recorder(f"http://127.0.0.1:{runner.addresses[0][1]}", seen)
    finally:
        await runner.cleanup()


# --- the demo target ------------------------------------------------------------------

@asynccontextmanager
async def demo(faults: Faults = HEALTHY) -> AsyncIterator[tuple[DemoTarget, Demo]]:
    async with running_target(faults=faults) as target, aiohttp.ClientSession() as session:
        yield target, Demo(target, session)


@dataclass
class Demo:
    target: DemoTarget
    session: aiohttp.ClientSession

    def service(self) -> dict[str, str]:
        return {"apikey": self.target.keys.service_role_key}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.target.url + path, headers=self.service(),
                                        json=body) as resp:
            return resp.status, await resp.json()

    async def event(self) -> str:
        status, doc = await self.call("POST", "/test-data/events", {"tickets": 0, "inventory": 50})
        assert status == 201
        return doc["event_id"]

    async def stats(self, event: str) -> dict[str, Any]:
        status, doc = await self.call("GET", f"/test-data/events/{event}/stats")
        assert status == 200
        return doc

    def webhook(self, event: str, *, signed: bool = True) -> PreparedRequest:
        raw = json.dumps({
            "id": f"evt_{uuid.uuid4().hex}", "type": "checkout.session.completed",
            "data": {"object": {"id": f"cs_test_{uuid.uuid4().hex}", "amount_total": 5000,
                                "metadata": {"event_id": event, "quantity": "1"}}},
        }).encode()
        headers = {}
        if signed:
            headers["Stripe-Signature"] = sign_header(raw, self.target.keys.webhook_secret,
                                                      int(time.time()))
        return post(self.target.url + "/functions/v1/stripe-webhook", raw, headers)

    def checkout(self, event: str, key: str | None = None, timeout: float = 5.0
                 ) -> PreparedRequest:
        headers = {"apikey": self.target.keys.anon_key}
        if key is not None:
            headers["Idempotency-Key"] = key
        body = json.dumps({"event_id": event, "quantity": 1, "email": "a@example.com"}).encode()
        return post(self.target.url + "/functions/v1/create-checkout-session", body, headers,
                    timeout)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


# --- activation -------------------------------------------------------------------------

def test_nothing_active_costs_a_lookup_in_an_empty_dict():
    h = Harness()
    assert h.client.active_for("hook") == ()
    assert h.client._by_request == {}
    abort, dup = fault(AbortFault(("hook",)), "a"), fault(DuplicateFault(("hook", "other")), "d")
    h.client.activate(abort)
    h.client.activate(dup)
    # outermost layer first: duplicate wraps abort (each copy may be cut)
    assert h.client.active_for("hook") == (dup, abort)
    assert h.client.active_for("other") == (dup,)
    assert h.client.active_for("unrelated") == ()
    h.client.deactivate(abort)
    h.client.deactivate(dup)
    assert h.client._by_request == {}


def test_registry_knows_the_chaos_metrics_even_when_not_declared():
    registry = Registry()
    ClientFaults.ensure_metrics(registry)
    assert set(CHAOS_METRICS) <= {m.name for m in registry}
    assert all(info.kind == "counter" for info in CHAOS_METRICS.values())


# --- abort ------------------------------------------------------------------------------------

def test_abort_sends_the_request_whole_and_closes_before_the_answer():
    async def scenario() -> None:
        async with recorder() as server, harness() as h:
            h.client.activate(fault(AbortFault(("hook",))))
            body = b'{"order": 42}'
            result = await h.send(post(server.url + "/hook?x=1", body, {"X-Trace": "t-1"}))
            assert (result.status, result.error_kind) == (0, ErrorKind.ABORTED_BY_CHAOS)
            assert result.sent_bytes > len(body)
            await server.wait_for(1)
            path, seen_body, headers = server.seen[0]
            assert (path, seen_body, headers["X-Trace"]) == ("/hook", body, "t-1")
            assert headers["Content-Type"] == "application/json"
            assert h.count("chaos_aborted") == 1

            # probability 0: a normal request, on the pooled connection, still works
            h.client.activate(fault(AbortFault(("hook",), probability=0.0)))
            result = await h.send(post(server.url + "/hook", b"ok"))
            assert (result.status, result.body) == (200, b"ok")
            assert h.count("chaos_aborted") == 1
    run(scenario)


def test_abort_that_cannot_connect_is_a_connection_error_not_an_abort():
    async def scenario() -> None:
        async with recorder() as server:
            url = server.url
        async with harness() as h:  # the server is gone: nothing listens there now
            h.client.activate(fault(AbortFault(("hook",))))
            result = await h.send(post(url + "/hook", b"{}"))
            assert result.status == 0 and result.error and "cannot connect" in result.error
            assert result.error_kind is ErrorKind.CONNECT
            assert h.count("chaos_aborted") is None
    run(scenario)


# --- duplicate -------------------------------------------------------------------------------

def test_duplicate_webhook_is_processed_once_by_an_idempotent_receiver():
    async def scenario() -> None:
        async with demo() as (_target, d), harness() as h:
            event = await d.event()
            h.client.activate(fault(DuplicateFault(("hook",), copies=1)))
            result = await h.send(d.webhook(event))
            assert result.status == 200
            assert len(h.extras) == 1 and h.extras[0].status == 200
            assert sorted(json.loads(r.body)["duplicate"] for r in (result, *h.extras)) == \
                [False, True]
            stats = await d.stats(event)
            assert (stats["webhooks_received"], stats["webhooks_processed"]) == (2, 1)
            assert (h.count("chaos_duplicates"), h.count("chaos_duplicate_mismatch")) == (1, 0)
            assert h.admitted == 1

            # redelivered later, twice: the original's answer is the flow's
            h.client.activate(fault(DuplicateFault(("hook",), copies=2, delay=0.05)))
            result = await h.send(d.webhook(event))
            assert json.loads(result.body)["duplicate"] is False
            stats = await d.stats(event)
            assert (stats["webhooks_received"], stats["webhooks_processed"]) == (5, 2)
            assert (h.count("chaos_duplicates"), h.count("chaos_duplicate_mismatch")) == (3, 0)
    run(scenario)


def test_duplicate_answered_differently_counts_a_mismatch():
    async def scenario() -> None:
        async with recorder() as server, harness() as h:
            h.client.activate(fault(DuplicateFault(("hook",), copies=2, delay=0.0)))
            result = await h.send(post(server.url + "/once", b"event-1"))
            assert result.status == 200
            assert [r.status for r in h.extras] == [409, 409]
            assert (h.count("chaos_duplicates"), h.count("chaos_duplicate_mismatch")) == (2, 2)
            assert len(server.seen) == 3
    run(scenario)


# --- reorder ---------------------------------------------------------------------------------

def test_reorder_delivers_a_full_window_shuffled_and_each_caller_gets_its_own_answer():
    async def scenario() -> None:
        async with recorder() as server, harness() as h:
            h.client.activate(fault(ReorderFault(("hook",), window=4, max_wait=5.0)))
            sent = [f"delivery-{i}".encode() for i in range(4)]
            started = time.monotonic()
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(h.send(post(server.url + "/hook", body)))
                         for body in sent]
            assert time.monotonic() - started < 2  # a full window does not wait for max_wait
            assert [t.result().body for t in tasks] == sent
            arrived = [body for _, body, _ in server.seen]
            assert sorted(arrived) == sorted(sent) and arrived != sent
            moved = sum(a != s for a, s in zip(arrived, sent))
            assert h.count("chaos_reordered") == moved >= 2
    run(scenario)


def test_reorder_flushes_a_partial_window_after_max_wait_or_at_deactivate():
    async def scenario() -> None:
        async with recorder() as server, harness() as h:
            reorder = fault(ReorderFault(("hook",), window=5, max_wait=0.2))
            h.client.activate(reorder)
            started = time.monotonic()
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(h.send(post(server.url + "/hook", body)))
                         for body in (b"a", b"b")]
            assert 0.18 <= time.monotonic() - started < 2
            assert [t.result().body for t in tasks] == [b"a", b"b"]
            assert [body for _, body, _ in server.seen] == [b"b", b"a"]

            slow = fault(ReorderFault(("hook",), window=5, max_wait=30.0))
            h.client.activate(slow)
            started = time.monotonic()
            held = asyncio.create_task(h.send(post(server.url + "/hook", b"c")))
            await asyncio.sleep(0.05)
            assert not held.done()
            h.client.deactivate(slow)
            assert (await held).body == b"c"
            assert time.monotonic() - started < 1
    run(scenario)


def test_shuffle_is_never_the_arrival_order():
    rng = random.Random(3)
    for n in range(2, 6):
        for _ in range(50):
            order = shuffled(n, rng)
            assert sorted(order) == list(range(n)) and order != list(range(n))
    assert shuffled(1, rng) == [0]


# --- tamper ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["body", "signature", "stale", "missing-header"])
def test_tampered_webhooks_are_rejected_by_the_demo_target(mode):
    async def scenario() -> None:
        async with demo() as (target, d), harness() as h:
            event = await d.event()
            h.client.activate(fault(TamperFault(
                ("hook",), mode=mode, expect=(400,),
                secret=Static(target.keys.webhook_secret))))  # type: ignore[arg-type]
            result = await h.send(d.webhook(event))
            assert result.status == 400, result.body
            reason = json.loads(result.body)["error"]
            assert {"body": "no v1 signature", "signature": "no v1 signature", "stale": "too old",
                    "missing-header": "missing"}[mode] in reason
            assert (h.count("chaos_tamper_rejected"), h.count("chaos_tamper_accepted")) == (1, 0)
            assert (await d.stats(event))["webhooks_received"] == 0
    run(scenario)


def test_rotation_keeps_the_valid_signature_and_a_correct_receiver_accepts_it():
    async def scenario() -> None:
        async with demo() as (_target, d), harness() as h:
            event = await d.event()
            h.client.activate(fault(TamperFault(("hook",), mode="rotation", expect=(200,))))
            result = await h.send(d.webhook(event))
            assert result.status == 200
            assert (h.count("chaos_tamper_rejected"), h.count("chaos_tamper_accepted")) == (1, 0)
            assert (await d.stats(event))["webhooks_processed"] == 1
    run(scenario)


def test_a_receiver_that_takes_a_forged_signature_is_counted_as_accepting_it():
    async def scenario() -> None:
        async with recorder() as server, harness() as h:
            h.client.activate(fault(TamperFault(("hook",), mode="signature", expect=(400,))))
            signed = post(server.url + "/anything", b"{}",
                          {"stripe-signature": sign_header(b"{}", "whsec_x", int(time.time()))})
            assert (await h.send(signed)).status == 200
            assert (h.count("chaos_tamper_rejected"), h.count("chaos_tamper_accepted")) == (0, 1)
            forged = server.seen[0][2]["Stripe-Signature"]
            assert forged != signed.headers["stripe-signature"]
            assert not verify(forged, b"{}", "whsec_x", now=time.time()).ok
    run(scenario)


def test_tamper_modes_change_exactly_what_they_say():
    secret, now = "whsec_t", 1_700_000_000.0
    raw = b'{"id":"evt_1"}'
    req = post("http://127.0.0.1:1/hook", raw, {"Stripe-Signature": sign_header(raw, secret, int(now))})
    rng = random.Random(5)

    def mode(m: str, with_secret: bool = True) -> PreparedRequest:
        spec = TamperFault(("hook",), mode=m, expect=(400,))  # type: ignore[arg-type]
        return tamper(req, spec, secret if with_secret else None, rng, now)

    body = mode("body")
    assert len(body.body or b"") == len(raw) and sum(a != b for a, b in zip(body.body or b"", raw)) == 1
    assert body.headers == req.headers
    stale = mode("stale").headers["Stripe-Signature"]
    assert verify(stale, raw, secret, now=now - STALE_AGE_S).ok
    assert verify(stale, raw, secret, now=now).reason == "too_old"
    rotation = mode("rotation").headers["Stripe-Signature"]
    assert rotation.count("v1=") == 2 and verify(rotation, raw, secret, now=now).ok
    assert not rotation.split(",")[1].endswith(req.headers["Stripe-Signature"].split("v1=")[1])
    assert "Stripe-Signature" not in mode("missing-header").headers
    assert req.headers["Stripe-Signature"] == sign_header(raw, secret, int(now))  # untouched

    h = Harness()
    with pytest.raises(ValueError, match="secret"):
        h.client.activate(fault(TamperFault(("hook",), mode="stale", expect=(400,))))


# --- timeout-retry --------------------------------------------------------------------------

def retry_fault(mode: str = "retry", **options: Any) -> Fault:
    return fault(TimeoutRetryFault(("checkout",), mode=mode, **options))  # type: ignore[arg-type]


def test_retry_after_a_timeout_replays_the_first_session():
    async def scenario() -> None:
        async with demo(Faults(latency_ms=250)) as (_target, d), harness() as h:
            event = await d.event()
            h.client.activate(retry_fault(timeout=0.1, retries=2))
            result = await h.send(d.checkout(event), "checkout")
            assert result.status == 200, result.body
            # the timed-out attempt and the replay check went out besides the flow's
            assert [r.status for r in h.extras] == [0, 200]
            assert h.extras[1].body == result.body
            assert h.extras[1].headers.get("Idempotent-Replayed") == "true"
            stats = await d.stats(event)
            assert (stats["checkouts"], stats["inventory_left"]) == (1, 49)
            assert (h.count("chaos_retries"), h.count("chaos_idempotency_violations")) == (2, 0)
    run(scenario)


def test_retry_against_a_target_that_ignores_the_key_counts_a_violation():
    async def scenario() -> None:
        async with demo(Faults(latency_ms=250, no_idempotency=True)) as (_t, d), harness() as h:
            event = await d.event()
            h.client.activate(retry_fault(timeout=0.1))
            result = await h.send(d.checkout(event, key="order-7"), "checkout")
            assert result.status == 200
            assert h.count("chaos_idempotency_violations") == 1
            assert (await d.stats(event))["checkouts"] >= 2
            # the request's own key was used, not a generated one
            assert h.extras[1].body != result.body
    run(scenario)


def test_same_key_with_another_body_is_refused():
    async def scenario() -> None:
        async with demo() as (_target, d), harness() as h:
            event = await d.event()
            h.client.activate(retry_fault("different-body"))
            result = await h.send(d.checkout(event), "checkout")
            assert result.status == 200
            assert [(r.status, json.loads(r.body)) for r in h.extras] == \
                [(400, {"error": "idempotency_key_reuse"})]
            assert (await d.stats(event))["checkouts"] == 1
            assert (h.count("chaos_retries"), h.count("chaos_idempotency_violations")) == (1, 0)
    run(scenario)


def test_different_body_accepted_by_a_target_that_ignores_the_key_is_a_violation():
    async def scenario() -> None:
        async with demo(Faults(no_idempotency=True)) as (_target, d), harness() as h:
            event = await d.event()
            h.client.activate(retry_fault("different-body"))
            assert (await h.send(d.checkout(event), "checkout")).status == 200
            assert h.count("chaos_idempotency_violations") == 1
    run(scenario)


def test_the_same_key_twice_at_once_creates_at_most_one_session():
    async def scenario() -> None:
        async with demo() as (_target, d), harness() as h:
            event = await d.event()
            h.client.activate(retry_fault("concurrent"))
            for _ in range(3):
                await h.send(d.checkout(event), "checkout")
            answers = sorted(r.status for r in h.extras)
            assert set(answers) <= {200, 409}
            assert (await d.stats(event))["checkouts"] == 3  # one per flow request
            assert (h.count("chaos_retries"), h.count("chaos_idempotency_violations")) == (3, 0)

            await d.call("PUT", "/_control/faults", {"no_idempotency": True})
            await h.send(d.checkout(event), "checkout")
            assert (await d.stats(event))["checkouts"] == 5
            assert h.count("chaos_idempotency_violations") == 1
    run(scenario)


def test_a_fault_that_ended_before_send_is_skipped():
    async def scenario() -> None:
        async with recorder() as server, harness() as h:
            abort = fault(AbortFault(("hook",)))
            h.client.activate(abort)
            assert h.client.applies("hook", 0.0)
            h.client.deactivate(abort)
            outgoing = Outgoing("hook", 0.0, TAGS, h.transport, h.registry, h.extras.append, h._admit)
            result = await h.client.wrap(h.transport.send, outgoing)(post(server.url + "/x", b"1"))
            assert result.status == 200
    run(scenario)


def test_a_fault_applies_only_to_requests_sent_inside_its_window():
    """Its planned end is on the run clock: a request sent at or after it is
    not faulted, even before the timeline gets round to deactivating it."""
    abort = fault(AbortFault(("hook",)))
    client = ClientFaults(random.Random(1))
    client.activate(abort, until_s=10.0)
    assert client.applies("hook", 9.999)
    assert not client.applies("hook", 10.0)
    assert not client.applies("other", 5.0)
