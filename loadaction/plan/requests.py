"""One HTTP request as a plan writes it (`request:` steps and `batch:` items)."""

from __future__ import annotations

from collections.abc import Collection

from loadaction.errors import PlanError
from loadaction.plan.fields import (
    check_keys, expect_duration, expect_int, expect_map, expect_str, expect_text, required,
    string_pairs,
)
from loadaction.plan.hosts import check_url_host
from loadaction.plan.model import Renderable, RequestSpec
from loadaction.plan.source import Node, Seq
from loadaction.plan.templates import Templates

REQUEST_KEYS = (
    "name", "method", "url", "query", "headers", "json", "form", "body", "timeout", "expect",
    "tags",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_BODY_KEYS = ("json", "form", "body")


def parse_request(node: Node, templates: Templates,
                  allowed_hosts: Collection[str]) -> RequestSpec:
    """A request; a literal absolute URL must point at an allowed host."""
    request = expect_map(node, "request")
    check_keys(request, REQUEST_KEYS, "in request")
    url_node = required(request, "url", "in request")
    url_text = expect_str(url_node, "url")
    check_url_host(url_text, url_node.source, allowed_hosts)
    bodies = [key for key in _BODY_KEYS if key in request]
    if len(bodies) > 1:
        raise PlanError(f"request has both '{bodies[0]}' and '{bodies[1]}'; use one",
                        request.key_source(bodies[1]))
    name, timeout, tags = (request.get(key) for key in ("name", "timeout", "tags"))
    query, form, body = (request.get(key) for key in ("query", "form", "body"))
    json = request.get("json")
    return RequestSpec(
        method=_method(request.get("method")),
        url=templates.compile_string(url_text, url_node.source),
        name=expect_str(name, "name") if name is not None else url_text,
        source=request.source,
        query=templates.compile_node(expect_map(query, "query")) if query is not None else None,
        headers=parse_headers(request.get("headers"), templates),
        json=templates.compile_node(json) if json is not None else None,
        form=templates.compile_node(expect_map(form, "form")) if form is not None else None,
        body=(templates.compile_string(expect_text(body, "body"), body.source)
              if body is not None else None),
        timeout=expect_duration(timeout, "timeout", positive=True) if timeout is not None else None,
        expect=parse_expect(request.get("expect")),
        tags=string_pairs(tags, "tags") if tags is not None else (),
    )


def parse_headers(node: Node | None, templates: Templates) -> tuple[tuple[str, Renderable], ...]:
    """Header names keep their case as written; values are text templates."""
    if node is None:
        return ()
    headers = expect_map(node, "headers")
    return tuple(
        (name, templates.compile_string(expect_text(entry.value, f"headers.{name}"),
                                        entry.value.source))
        for name, entry in headers.items()
    )


def _method(node: Node | None) -> str:
    if node is None:
        return "GET"
    method = expect_str(node, "method").upper()
    if method not in METHODS:
        raise PlanError(f"method: unknown HTTP method '{method}' "
                        f"(expected one of: {', '.join(METHODS)})", node.source)
    return method


def parse_expect(node: Node | None) -> tuple[int, ...] | None:
    """`expect: 200` or `expect: [200, 409]`: statuses that count as the right answer."""
    if node is None:
        return None
    items = node.items if isinstance(node, Seq) else (node,)
    statuses = []
    for item in items:
        status = expect_int(item, "expect")
        if not 100 <= status <= 599:
            raise PlanError(f"expect: {status} is not an HTTP status (100-599)", item.source)
        statuses.append(status)
    if not statuses:
        raise PlanError("expect: the list is empty", node.source)
    return tuple(statuses)

