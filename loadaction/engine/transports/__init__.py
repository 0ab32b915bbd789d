"""The transports behind the engine's port, and the one rule that picks one
for a run, so the composition root and the engine's own fallback (a `Run`
built without a transport, as tests and library callers do) cannot differ."""

from __future__ import annotations

import os
from collections.abc import Mapping

from loadaction.engine.transport import Transport
from loadaction.engine.transports.aiohttp import AiohttpTransport
from loadaction.engine.transports.fast import FastTransport
from loadaction.plan.model import HTTP_CLIENTS, Plan

DEFAULT_HTTP_CLIENT = "fast"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def transport_for(plan: Plan, http_client: str | None = None,
                  environ: Mapping[str, str] | None = None) -> Transport:
    """`http_client` (the `--http-client` flag) wins over the plan's
    `defaults.httpClient`, which wins over the default, fast. The fast
    client speaks to the target directly, so with an HTTP(S) proxy in the
    environment every run takes aiohttp's, which honours it (and NO_PROXY):
    traffic a team routes through a proxy must never bypass it."""
    env = os.environ if environ is None else environ
    choice = http_client or plan.http_client or DEFAULT_HTTP_CLIENT
    assert choice in HTTP_CLIENTS, choice
    proxied = any(env.get(v) for v in PROXY_VARS)
    if choice == "fast" and not proxied:
        return FastTransport(max_body_bytes=plan.max_body_bytes,
                             insecure_skip_tls_verify=plan.insecure_skip_tls_verify)
    return AiohttpTransport(max_body_bytes=plan.max_body_bytes, trust_env=proxied,
                            insecure_skip_tls_verify=plan.insecure_skip_tls_verify)


__all__ = ["DEFAULT_HTTP_CLIENT", "PROXY_VARS", "AiohttpTransport", "FastTransport", "Transport",
           "transport_for"]
