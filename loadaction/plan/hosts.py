"""The target URL and the hosts requests may reach.

A load test aimed at the wrong host is an attack, so the allowlist is built
before flows are read and every request with a literal host is checked
against it at load time (the engine checks computed URLs when it sends).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from jinja2 import TemplateError

from loadaction.errors import PlanError, Source
from loadaction.plan.fields import expect_seq, expect_str
from loadaction.plan.references import check_references
from loadaction.plan.source import Map
from loadaction.plan.templates import Reference, Templates, is_template

_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")
_DEFAULT_PORTS = {"http": 80, "https": 443}


PLACEHOLDER_TARGET = "http://unset-target.invalid"
"""What `validate` checks a plan against when its target reads an unset
environment variable (`.invalid` never resolves)."""


class UnsetTarget(PlanError):
    """The target reads an environment variable that is not set."""

    def __init__(self, name: str, source: Source):
        super().__init__(f"target: environment variable '{name}' is not set", source,
                         f"export {name} or pass --target")
        self.name = name


def resolve_target(root: Map, cli_target: str | None, templates: Templates,
                   env: Mapping[str, str]) -> str:
    """--target if given, else the plan's `target` rendered with `env` only
    (it is needed before anything else exists). UnsetTarget when it reads an
    environment variable that is not set."""
    node = root.get("target")
    compiled = None
    references: list[Reference] = []
    if node is not None:
        first = len(templates.references)
        compiled = templates.compile_string(expect_str(node, "target"), node.source)
        references = templates.references[first:]
        check_references(references, roots=("env",), vars=(), secrets=(), data=())
    if cli_target is not None:
        return _checked_url(cli_target, "--target", None)
    if node is None or compiled is None:
        raise PlanError("the plan has no target", Source(root.source.file, 1),
                        "add 'target:' to the plan or pass --target")
    try:
        rendered = compiled.render({"env": dict(env)})
    except TemplateError as exc:
        missing = [ref.name for ref in references
                   if ref.root == "env" and ref.name and ref.name not in env]
        if missing:
            raise UnsetTarget(missing[0], node.source) from None
        raise PlanError(f"target: {exc}", node.source) from None
    return _checked_url(str(rendered), "target", node.source)


def allowed_hosts(target: str, root: Map, extra: Iterable[str]) -> tuple[str, ...]:
    """The target's host (alone and with its port), `allowedHosts`, and
    hosts allowed on the command line; lower-cased, without duplicates."""
    host, port = _host_port(target, "target", None)
    hosts = [host, f"{host}:{port}"]
    node = root.get("allowedHosts")
    if node is not None:
        for item in expect_seq(node, "allowedHosts").items:
            text = expect_str(item, "allowedHosts")
            hosts.append(_checked_host(text, "allowedHosts", item.source))
    hosts.extend(_checked_host(text, "allowed host", None) for text in extra)
    return tuple(dict.fromkeys(hosts))


def check_url_host(url: str, source: Source, allowed: Iterable[str]) -> None:
    """Refuse a literal absolute URL whose host is not allowed; relative URLs
    and computed hosts pass (the engine checks those when sending)."""
    match = _ABSOLUTE.match(url)
    if match is None or is_template(match.group(0)):
        return
    if match.group(1).lower() not in _DEFAULT_PORTS:
        raise PlanError(f"url: unsupported scheme '{match.group(1)}' (expected http or https)",
                        source)
    host, port = _host_port(match.group(0), "url", source)
    if host not in allowed and f"{host}:{port}" not in allowed:
        raise PlanError(f"url: host '{host}' is not in the allowed hosts", source,
                        "add it to allowedHosts or pass --allow-host")


def _checked_url(text: str, what: str, source: Source | None) -> str:
    url = text.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _DEFAULT_PORTS or not urlsplit(url).hostname:
        raise PlanError(f"{what}: expected an http(s) URL with a host, got '{text}'", source)
    _host_port(url, what, source)
    return url.rstrip("/")


def _host_port(url: str, what: str, source: Source | None) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise PlanError(f"{what}: invalid port in '{url}'", source) from None
    host = parts.hostname or ""
    return host, port if port is not None else _DEFAULT_PORTS[parts.scheme.lower()]


def _checked_host(text: str, what: str, source: Source | None) -> str:
    host = text.strip().lower()
    if not host or "/" in host or " " in host:
        raise PlanError(f"{what}: expected a host or host:port, got '{text}'", source)
    return host
