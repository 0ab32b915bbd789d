"""The demo target's HTTP surface: routes shaped like the seed's Supabase
staging (edge functions, PostgREST tables and RPCs, the Realtime socket),
test-data seeding, and the fault control endpoint.

Handlers validate, call the `Store`, and shape answers; they never know
which database is behind it. Error bodies follow their origin: edge
functions answer `{"error": ...}`, PostgREST-style routes `{"message": ...}`.
A write that created or changed a published row hands it to the realtime
hub after it committed (see `realtime`). A request that touches the store
holds a slot of the database pool for its handler (see `pool`), and every
answer but /metrics' own is counted there (see `metrics`).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from loadaction.demo.auth import DemoKeys, Denied, Role, authenticate
from loadaction.demo.faults import FaultState, Invalid, Leak, parse_update
from loadaction.demo.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyKeys,
    Saved,
    fingerprint,
)
from loadaction.demo.metrics import PATH as METRICS_PATH
from loadaction.demo.metrics import DemoMetrics
from loadaction.demo.payloads import (
    CheckoutRequest,
    parse_checkout,
    parse_event_ref,
    parse_json,
    parse_scan,
    parse_seed,
    parse_webhook,
)
from loadaction.demo.pool import DEFAULT_ACQUIRE_TIMEOUT_S, DEFAULT_POOL_SIZE, Pool, PoolExhausted
from loadaction.demo.realtime import PATH as REALTIME_PATH
from loadaction.demo.realtime import RealtimeHub, RealtimeSettings, serve_socket
from loadaction.demo.realtime.changes import (
    order_created,
    session_created,
    ticket_scanned,
)
from loadaction.demo.store import Scan, Store
from loadaction.demo.stripe_signature import verify

CONTROL_PREFIX = "/_control/"
TEST_DATA_PREFIX = "/test-data/"
RACE_WINDOW_S = 0.02  # how long the `race` fault holds a stale read before writing


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a handler may touch; one per app, never module-global."""

    store: Store
    keys: DemoKeys
    faults: FaultState
    clock: Callable[[], float]  # wall clock, for signature and commit timestamps
    realtime: RealtimeHub
    pool: Pool
    metrics: DemoMetrics
    leak: Leak = field(default_factory=Leak)
    idempotency: IdempotencyKeys = field(default_factory=IdempotencyKeys)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)


CONTEXT = web.AppKey("demo_context", Context)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ctx(request: web.Request) -> Context:
    return request.app[CONTEXT]


def _message(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"message": message, **extra}, status=status)


def _error(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost, so it sees the status the client gets (401s and JSON errors
    included); labelled by route pattern, never by raw path, to keep the
    series few."""
    if request.path == METRICS_PATH:
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        timed = None if request.path == REALTIME_PATH else time.perf_counter() - started
        _ctx(request).metrics.observe(route, request.method, status, timed)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown routes and wrong methods answer JSON too, so clients parse every body."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _message(exc.status, exc.reason)
        raise


WEBHOOK_PATH = "/functions/v1/stripe-webhook"


@web.middleware
async def require_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stripe sends no Supabase key: the webhook function is deployed without JWT
    verification (`--no-verify-jwt`) and trusts its signature instead. The
    realtime socket checks its own key, which comes in the query string."""
    if request.path in (WEBHOOK_PATH, REALTIME_PATH, METRICS_PATH):
        return await handler(request)
    outcome = authenticate(_ctx(request).keys, request.headers)
    if isinstance(outcome, Denied):
        return _message(401, outcome.message)
    return await handler(request)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency and errors for the system under test only: the control routes must
    stay usable to turn faults off again, and the test-data routes are the
    harness (a seeding request that fails would stop the run, not measure it).
    The realtime socket has faults of its own (realtime-lag, realtime-drop)."""
    if (request.path.startswith((CONTROL_PREFIX, TEST_DATA_PREFIX))
            or request.path in (REALTIME_PATH, METRICS_PATH)):
        return await handler(request)
    ctx = _ctx(request)
    faults = ctx.faults
    current = faults.current()
    if current.leak_kb:
        ctx.leak.keep(current.leak_kb)
    latency = current.latency_ms
    if latency:
        await asyncio.sleep(latency / 1000)
    if faults.should_fail():
        return _message(500, "injected fault")
    return await handler(request)


@web.middleware
async def hold_connection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Innermost: a request holds its pool slot while it runs, not while an
    injected latency delays it. The control routes, the socket and /metrics
    touch no store and need none."""
    if request.path.startswith(CONTROL_PREFIX) or request.path in (REALTIME_PATH, METRICS_PATH):
        return await handler(request)
    try:
        async with _ctx(request).pool.connection():
            return await handler(request)
    except PoolExhausted:
        return _message(503, "connection pool exhausted")


def _service_only(request: web.Request) -> web.Response | None:
    # Asking again (two constant-time compares) instead of stashing the role on
    # the request keeps working across aiohttp versions' request-storage rules.
    role: Role | Denied = authenticate(_ctx(request).keys, request.headers)
    if role != "service_role":
        return _message(401, "This endpoint requires the service role key",
                        hint="send the service role key in apikey or Authorization: Bearer")
    return None


async def _body(request: web.Request, *, empty: Any = None) -> Any | Invalid:
    return parse_json(await request.read(), empty=empty)


# --- edge functions ---------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"


async def create_checkout_session(request: web.Request) -> web.Response:
    """Honours `Idempotency-Key` as Stripe does (see `idempotency`), unless
    the `no_idempotency` fault makes it ignore the key.

    Two answers share the status 409 and differ in the body: sold out is
    `{"error": "insufficient_inventory"}`, a key whose first request is still
    running `{"error": "idempotency_key_in_use"}` (retry later: no sell-out)."""
    ctx = _ctx(request)
    body = await _body(request)
    checkout = body if isinstance(body, Invalid) else parse_checkout(body)
    if isinstance(checkout, Invalid):
        return _error(400, checkout.message)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if not key or ctx.faults.current().no_idempotency:
        return await _create_session(ctx, checkout)
    if len(key) > MAX_KEY_LENGTH:
        return _error(400, "idempotency_key_too_long")
    keys, route = ctx.idempotency, request.path
    begun = keys.begin(route, key, fingerprint(body))
    if begun == "reuse":
        return _error(400, "idempotency_key_reuse")
    if begun == "in_use":
        return _error(409, "idempotency_key_in_use")
    if isinstance(begun, Saved):
        return web.Response(body=begun.body, status=begun.status, content_type=begun.content_type,
                            charset=begun.charset, headers={"Idempotent-Replayed": "true"})
    try:
        response = await _create_session(ctx, checkout)
    except BaseException:
        keys.abandon(route, key)
        raise
    raw = response.body if isinstance(response.body, bytes) else b""  # json_response: bytes
    keys.finish(route, key, Saved(response.status, raw, response.content_type, response.charset))
    return response


async def _create_session(ctx: Context, checkout: CheckoutRequest) -> web.Response:
    session_id = f"cs_test_{secrets.token_hex(16)}"
    outcome = await ctx.store.checkout(
        event_id=checkout.event_id, quantity=checkout.quantity, email=checkout.email,
        session_id=session_id)
    if outcome == "unknown_event":
        return _error(404, "event_not_found")
    if outcome == "insufficient_inventory":
        return _error(409, "insufficient_inventory")
    ctx.realtime.publish(session_created(outcome, ctx.now()))  # committed: never waits
    return web.json_response({"session_id": session_id,
                              "url": f"https://checkout.stripe.com/c/pay/{session_id}"})


async def stripe_webhook(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    raw = await request.read()
    check = verify(request.headers.get("Stripe-Signature"), raw, ctx.keys.webhook_secret,
                   now=ctx.clock())
    if not check.ok:
        return _error(400, check.message)
    delivery = parse_webhook(raw)
    if isinstance(delivery, Invalid):
        return _error(400, delivery.message)
    outcome = await ctx.store.record_webhook(
        delivery, idempotent=not ctx.faults.current().double_webhook)
    if (order := outcome.order) is not None:
        ctx.realtime.publish(order_created(order, ctx.now()))
    return web.json_response({"received": True, "duplicate": outcome.duplicate})


# --- PostgREST: RPCs and tables -----------------------------------------------------

async def _racy_scan(store: Store, ticket_id: str, scanner_id: str | None) -> Scan:
    """The bug the seed's race scenario exists to catch: check, yield, then set."""
    status = await store.peek_ticket(ticket_id)
    if status is None:
        return Scan("invalid")
    scan = Scan("already_scanned")
    if status != "scanned":
        await asyncio.sleep(RACE_WINDOW_S)
        scan = Scan("valid", await store.force_scan(ticket_id, scanner_id))
    await store.record_scan(ticket_id, scanner_id, scan.result)
    return scan


async def scan_ticket_atomic(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    body = await _body(request)
    scan = body if isinstance(body, Invalid) else parse_scan(body)
    if isinstance(scan, Invalid):
        return _message(400, scan.message)
    ctx = _ctx(request)
    if ctx.faults.current().race:
        outcome = await _racy_scan(ctx.store, scan.ticket_id, scan.scanner_id)
    else:
        outcome = await ctx.store.scan_ticket(scan.ticket_id, scan.scanner_id)
    if (ticket := outcome.ticket) is not None:
        ctx.realtime.publish(ticket_scanned(ticket, ctx.now()))
    return web.json_response({"result": outcome.result})


async def event_revenue(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    body = await _body(request)
    event_id = body if isinstance(body, Invalid) else parse_event_ref(body)
    if isinstance(event_id, Invalid):
        return _message(400, event_id.message)
    revenue = await _ctx(request).store.event_revenue(event_id)
    if revenue is None:
        return _message(404, "event not found")
    return web.json_response(revenue.as_dict())


_IGNORED_PARAMS = frozenset({"select", "order"})


def _filters(request: web.Request, table: str, columns: tuple[str, ...]
             ) -> tuple[dict[str, str], int | None, int] | Invalid:
    """PostgREST's `col=eq.value`, `limit` and `offset`; `select`/`order` are accepted
    and ignored (rows come in creation order)."""
    filters: dict[str, str] = {}
    limit: int | None = None
    offset = 0
    for key, value in request.query.items():
        if key in _IGNORED_PARAMS:
            continue
        if key in ("limit", "offset"):
            if not value.isdigit():
                return Invalid(f"{key} must be a non-negative integer, got {value!r}")
            if key == "limit":
                limit = int(value)
            else:
                offset = int(value)
            continue
        if key not in columns:
            return Invalid(f"column {table}.{key} does not exist (filterable: {', '.join(columns)})")
        operator, dot, operand = value.partition(".")
        if operator != "eq" or not dot:
            return Invalid(f"unsupported filter {key}={value!r}: only {key}=eq.<value> is supported")
        filters[key] = operand
    return filters, limit, offset


async def list_events(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    parsed = _filters(request, "events", ("id",))
    if isinstance(parsed, Invalid):
        return _message(400, parsed.message)
    filters, limit, offset = parsed
    rows = await _ctx(request).store.list_events(event_id=filters.get("id"), limit=limit,
                                                 offset=offset)
    return web.json_response(rows)


async def list_tickets(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    parsed = _filters(request, "tickets", ("id", "event_id", "status"))
    if isinstance(parsed, Invalid):
        return _message(400, parsed.message)
    filters, limit, offset = parsed
    rows = await _ctx(request).store.list_tickets(
        event_id=filters.get("event_id"), ticket_id=filters.get("id"),
        status=filters.get("status"), limit=limit, offset=offset)
    return await _send_large(request, rows.encode())


_CHUNK = 16 * 1024


async def _send_large(request: web.Request, body: bytes) -> web.StreamResponse:
    """A large JSON body in chunks, each awaited: a socket's send buffer only
    ever grows by a chunk. Written at once, a 225 KB list of 1,500 tickets
    waits in the connection's buffer, which keeps that size for as long as
    the connection stays open: twenty dashboard viewers' keep-alive
    connections held 20 MB of the target's memory after their first load.
    The database wrote the JSON (no dict per row; see `Store.list_tickets`)."""
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    response.content_length = len(body)
    await response.prepare(request)
    view = memoryview(body)
    for start in range(0, len(body), _CHUNK):
        await response.write(view[start:start + _CHUNK])
    await response.write_eof()
    return response


# --- test data ----------------------------------------------------------------------

async def seed_event(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    body = await _body(request, empty={})
    seed = body if isinstance(body, Invalid) else parse_seed(body)
    if isinstance(seed, Invalid):
        return _message(400, seed.message)
    event = await _ctx(request).store.create_event(
        name=seed.name or f"Load test event {secrets.token_hex(3)}",
        price_cents=seed.price_cents, inventory=seed.inventory, tickets=seed.tickets)
    return web.json_response({"event_id": event.event_id, "ticket_ids": list(event.ticket_ids)},
                             status=201)


async def delete_event(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    if not await _ctx(request).store.delete_event(request.match_info["event_id"]):
        return web.json_response({"deleted": False, "message": "event not found"}, status=404)
    return web.json_response({"deleted": True})


async def event_stats(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    stats = await _ctx(request).store.event_stats(request.match_info["event_id"])
    if stats is None:
        return _message(404, "event not found")
    return web.json_response(stats.as_dict())


# --- control ------------------------------------------------------------------------

async def get_faults(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    return web.json_response(_ctx(request).faults.describe())


async def put_faults(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    body = await _body(request)
    update = body if isinstance(body, Invalid) else parse_update(body)
    if isinstance(update, Invalid):
        return _message(400, update.message)
    faults = _ctx(request).faults
    faults.apply(update)
    return web.json_response(faults.describe())


async def clear_faults(request: web.Request) -> web.Response:
    if denied := _service_only(request):
        return denied
    faults = _ctx(request).faults
    faults.clear()
    return web.json_response(faults.describe())


async def health(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    return web.json_response({"ok": True, "store": await ctx.store.describe(),
                              "realtime": ctx.realtime.describe()})


async def metrics(request: web.Request) -> web.Response:
    body, content_type = _ctx(request).metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


# --- realtime -------------------------------------------------------------------------

async def realtime_socket(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    return await serve_socket(request, ctx.keys, ctx.realtime)


async def _close_sockets(app: web.Application) -> None:
    app[CONTEXT].realtime.disconnect_all()


def make_app(store: Store, keys: DemoKeys, faults: FaultState | None = None, *,
             clock: Callable[[], float] = time.time,
             realtime: RealtimeSettings | None = None,
             pool_timeout_s: float = DEFAULT_ACQUIRE_TIMEOUT_S) -> web.Application:
    """The app over a started store; the caller owns the store's lifetime."""
    app = web.Application(middlewares=[count_requests, json_errors, require_key, inject_faults,
                                       hold_connection])
    state = faults or FaultState()
    hub = RealtimeHub(state, realtime or RealtimeSettings())
    # The pool fault changed at run time can shrink the pool, never grow it past
    # what the store was opened with (PostgreSQL's connections are opened for that).
    capacity = state.base.pool_size or DEFAULT_POOL_SIZE
    pool = Pool(lambda: min(state.current().pool_size or DEFAULT_POOL_SIZE, capacity),
                pool_timeout_s)
    leak = Leak()
    app[CONTEXT] = Context(store=store, keys=keys, faults=state, clock=clock, realtime=hub,
                           pool=pool, metrics=DemoMetrics(pool, hub, leak), leak=leak)
    app.on_shutdown.append(_close_sockets)
    app.router.add_post("/functions/v1/create-checkout-session", create_checkout_session)
    app.router.add_post(WEBHOOK_PATH, stripe_webhook)
    app.router.add_post("/rest/v1/rpc/scan_ticket_atomic", scan_ticket_atomic)
    app.router.add_post("/rest/v1/rpc/event_revenue", event_revenue)
    app.router.add_get("/rest/v1/events", list_events)
    app.router.add_get("/rest/v1/tickets", list_tickets)
    app.router.add_post(TEST_DATA_PREFIX + "events", seed_event)
    app.router.add_delete(TEST_DATA_PREFIX + "events/{event_id}", delete_event)
    app.router.add_get(TEST_DATA_PREFIX + "events/{event_id}/stats", event_stats)
    app.router.add_get("/_control/faults", get_faults)
    app.router.add_put("/_control/faults", put_faults)
    app.router.add_delete("/_control/faults", clear_faults)
    app.router.add_get("/_control/health", health)
    app.router.add_get(METRICS_PATH, metrics)
    app.router.add_get(REALTIME_PATH, realtime_socket)
    return app
