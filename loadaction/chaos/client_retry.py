"""`timeout-retry`: the client gives up early and tries again with the same
idempotency key, or misuses the key, to see whether the server keeps its
promise (Stripe's rules): the same key and body replay the first answer
exactly; the same key with another body is refused; the same key twice at
once never does the work twice.

Every request carries the key: the request's own `header` if it has one, else
a fresh uuid4 per request (from the OS, not the run's seeded generator: keys
from a repeated seed would replay another run's answers on the same staging).

Modes, and what counts in `chaos_idempotency_violations`:

- `retry`: the first attempt goes out with the fault's short `timeout`. If it
  is answered in time with a 2xx, the same key and body go out once more and
  must replay it exactly (a different 2xx body is a violation). Otherwise it is retried up to
  `retries` times with the request's normal timeout, again while an attempt
  gets no answer or a 409 (the key still in use), with a short backoff; the
  flow sees the last attempt. The timed-out attempt's answer was never read,
  so when the last attempt succeeds (2xx) one more request with the same key
  and body checks the replay: a 2xx with a different body than the last
  attempt's is a violation (the server did the work again).
- `different-body`: the request as is (the flow sees it), then the same key
  with a changed body: a JSON object gains a field, a form a parameter, any
  other body a trailing newline; a request without a body is left alone. A
  2xx to both is a violation (Stripe answers 400).
- `concurrent`: the same request twice at once (the flow sees the first); two
  2xx with different bodies is a violation (a replay must be identical; a 409
  or a replay is correct).

`chaos_retries` counts each extra request (retries, the replay check, the
changed-body and concurrent copies). Violations are counted 0 when judged and
fine, so a `count==0` budget passes on evidence.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from loadaction.chaos.client_base import (
    Deliver,
    Delivery,
    header_name,
    is_2xx,
    with_changes,
)
from loadaction.engine.transport import HttpResult, PreparedRequest
from loadaction.plan.model import TimeoutRetryFault

RETRY_STATUSES = frozenset({0, 409})  # no answer; Stripe's "idempotency key in use"
MAX_BACKOFF_S = 1.0
PROBE_FIELD = "chaos_idempotency_probe"


def with_key(req: PreparedRequest, header: str) -> PreparedRequest:
    """`req` carrying an idempotency key: its own, or a new one."""
    if header_name(req.headers, header) is not None:
        return req
    return with_changes(req, headers={**req.headers, header: str(uuid.uuid4())})


def changed_body(req: PreparedRequest) -> bytes | None:
    """Another body the server must not accept under the same key; None: no body."""
    body = req.body
    if not body:
        return None
    marker = uuid.uuid4().hex
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict):
        return json.dumps({**doc, PROBE_FIELD: marker}, separators=(",", ":")).encode()
    ctype = req.headers.get(header_name(req.headers, "Content-Type") or "", "")
    if "x-www-form-urlencoded" in ctype.lower():
        return body + f"&{PROBE_FIELD}={marker}".encode()
    return body + b"\n"


class TimeoutRetryEffect:
    def __init__(self, name: str, fault: TimeoutRetryFault) -> None:
        self.name = name
        self.fault = fault

    def wrap(self, inner: Deliver, delivery: Delivery) -> Deliver:
        mode = self.fault.mode

        async def deliver(req: PreparedRequest) -> HttpResult:
            keyed = with_key(req, self.fault.header)
            if mode == "retry":
                return await self._retry(keyed, inner, delivery)
            if mode == "different-body":
                return await self._different_body(keyed, inner, delivery)
            return await self._concurrent(keyed, inner, delivery)
        return deliver

    async def _again(self, req: PreparedRequest, inner: Deliver,
                     delivery: Delivery) -> HttpResult:
        await delivery.admit()
        delivery.count("chaos_retries", self.name)
        return await inner(req)

    def _judge(self, delivery: Delivery, violated: bool) -> None:
        delivery.count("chaos_idempotency_violations", self.name, 1.0 if violated else 0.0)

    async def _retry(self, req: PreparedRequest, inner: Deliver,
                     delivery: Delivery) -> HttpResult:
        fault = self.fault
        first = await inner(with_changes(req, timeout=min(fault.timeout, req.timeout)))
        if first.status != 0:
            # answered in time (a fast server beats any short timeout): the client
            # retries anyway, as one whose answer was lost would, and the replay
            # must be identical
            if is_2xx(first.status):
                again = await self._again(req, inner, delivery)
                delivery.extra(again)
                self._judge(delivery, is_2xx(again.status) and again.body != first.body)
            return first
        last = first
        for attempt in range(fault.retries):
            if attempt:
                await asyncio.sleep(min(fault.timeout * 2 ** (attempt - 1), MAX_BACKOFF_S))
            delivery.extra(last)  # superseded: the flow sees a later attempt
            last = await self._again(req, inner, delivery)
            if last.status not in RETRY_STATUSES:
                break
        if is_2xx(last.status):
            check = await self._again(req, inner, delivery)
            delivery.extra(check)
            self._judge(delivery, is_2xx(check.status) and check.body != last.body)
        return last

    async def _different_body(self, req: PreparedRequest, inner: Deliver,
                              delivery: Delivery) -> HttpResult:
        first = await inner(req)
        body = changed_body(req)
        if body is None:
            return first
        second = await self._again(with_changes(req, body=body), inner, delivery)
        delivery.extra(second)
        if is_2xx(first.status) and second.status:
            self._judge(delivery, is_2xx(second.status))
        return first

    async def _concurrent(self, req: PreparedRequest, inner: Deliver,
                          delivery: Delivery) -> HttpResult:
        await delivery.admit()  # outside the task group: a cap stops the run plainly
        delivery.count("chaos_retries", self.name)
        async with asyncio.TaskGroup() as group:
            one = group.create_task(inner(req))
            two = group.create_task(inner(req))
        first, second = one.result(), two.result()
        delivery.extra(second)
        if first.status and second.status:
            self._judge(delivery, is_2xx(first.status) and is_2xx(second.status)
                        and first.body != second.body)
        return first
