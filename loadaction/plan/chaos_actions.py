"""What each kind of fault does: its own keys, read into the model's action.

Infrastructure kinds (`http`, `command`, `toxiproxy`, `chaostoolkit`) start
a fault somewhere else and roll it back; client-side kinds change how the
engine sends the named requests while the fault is active.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, cast

from loadaction.errors import PlanError, did_you_mean
from loadaction.plan.fields import (
    check_keys, expect_choice, expect_duration, expect_int, expect_map, expect_number,
    expect_seq, expect_str, expect_text, required,
)
from loadaction.plan.model import (
    AbortFault, ChaosToolkitFault, CommandFault, DuplicateFault, FaultAction, HttpCall,
    HttpFault, ReorderFault, Renderable, RetryMode, TamperFault, TamperMode,
    TimeoutRetryFault, ToxiproxyFault,
)
from loadaction.plan.requests import METHODS, parse_expect, parse_headers
from loadaction.plan.source import Map, Node, Scalar, Seq, plain
from loadaction.plan.templates import Static, Templates, is_template

KIND_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "http": ("start", "stop"),
    "command": ("start", "stop", "timeout"),
    "toxiproxy": ("api", "proxy", "toxic"),
    "chaostoolkit": ("action", "rollback", "configuration"),
    "abort": ("requests", "probability"),
    "duplicate": ("requests", "probability", "copies", "delay"),
    "reorder": ("requests", "window", "maxWait"),
    "tamper": ("requests", "mode", "header", "secret", "expect", "probability"),
    "timeout-retry": ("requests", "mode", "timeout", "retries", "header"),
}
REQUIRED_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "http": ("start", "stop"),
    "command": ("start", "stop"),
    "toxiproxy": ("proxy", "toxic"),
    "chaostoolkit": ("action", "rollback"),
    "abort": ("requests",),
    "duplicate": ("requests",),
    "reorder": ("requests",),
    "tamper": ("requests", "mode"),
    "timeout-retry": ("requests",),
}

HTTP_CALL_KEYS = ("method", "url", "headers", "json", "body", "expect", "timeout")
DEFAULT_TOXIPROXY_API = "http://127.0.0.1:8474"
TOXIC_KEYS = ("type", "stream", "toxicity", "attributes")
TOXIC_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "slicer": ("average_size", "size_variation", "delay"),
    "limit_data": ("bytes",),
}
"""Toxiproxy's toxics and their attributes (Toxiproxy ignores unknown ones)."""
REQUIRED_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "latency": ("latency",), "bandwidth": ("rate",), "slow_close": ("delay",),
    "slicer": ("average_size",), "limit_data": ("bytes",),
}
STREAMS = ("downstream", "upstream")
ACTIVITY_TYPES = ("action", "probe")
PROVIDER_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "python": ("module", "func"),
    "process": ("path",),
    "http": ("url",),
}
TAMPER_MODES: tuple[TamperMode, ...] = ("body", "signature", "stale", "missing-header",
                                        "rotation")
SIGNING_MODES = ("stale", "rotation")
RETRY_MODES: tuple[RetryMode, ...] = ("retry", "different-body", "concurrent")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ABSOLUTE_URL = re.compile(r"https?://[^/?#\s]+", re.IGNORECASE)

ActionParser = Callable[[Map, Templates, Collection[str]], FaultAction]


# ---------------------------------------------------------------- infrastructure

def _http(fault: Map, templates: Templates, requests: Collection[str]) -> HttpFault:
    return HttpFault(start=_http_call(_present(fault, "start"), "start", templates),
                     stop=_http_call(_present(fault, "stop"), "stop", templates))


def _http_call(node: Node, what: str, templates: Templates) -> HttpCall:
    call = expect_map(node, what)
    where = f"in {what}"
    check_keys(call, HTTP_CALL_KEYS, where)
    method_node = required(call, "method", where)
    method = expect_str(method_node, "method").upper()
    if method not in METHODS:
        raise PlanError(f"method: unknown HTTP method '{method}' "
                        f"(expected one of: {', '.join(METHODS)})", method_node.source)
    url_node = required(call, "url", where)
    if "json" in call and "body" in call:
        raise PlanError(f"{what} has both 'json' and 'body'; use one", call.key_source("body"))
    json, body, expect, timeout = (call.get(key) for key in ("json", "body", "expect", "timeout"))
    return HttpCall(
        method=method,
        url=_url(url_node, "url", templates),
        source=call.source,
        headers=parse_headers(call.get("headers"), templates),
        json=templates.compile_node(json) if json is not None else None,
        body=(templates.compile_string(expect_text(body, "body"), body.source)
              if body is not None else None),
        expect=parse_expect(expect),
        timeout=expect_duration(timeout, "timeout", positive=True) if timeout is not None else 10.0,
    )


def _url(node: Node, what: str, templates: Templates) -> Renderable:
    """An absolute http(s) URL; a template is checked when it renders."""
    text = expect_str(node, what)
    if not is_template(text) and not _ABSOLUTE_URL.match(text.strip()):
        raise PlanError(f"{what}: expected an absolute http(s) URL, got '{text}'", node.source)
    return templates.compile_string(text.strip(), node.source)


def _command(fault: Map, templates: Templates, requests: Collection[str]) -> CommandFault:
    start, stop = _present(fault, "start"), _present(fault, "stop")
    timeout = fault.get("timeout")
    return CommandFault(
        start=templates.compile_string(expect_str(start, "start"), start.source),
        stop=templates.compile_string(expect_str(stop, "stop"), stop.source),
        timeout=expect_duration(timeout, "timeout", positive=True) if timeout is not None else 30.0,
    )


def _toxiproxy(fault: Map, templates: Templates, requests: Collection[str]) -> ToxiproxyFault:
    api = fault.get("api")
    proxy_node = _present(fault, "proxy")
    proxy = expect_str(proxy_node, "proxy")
    if is_template(proxy):
        raise PlanError("proxy: expected the proxy's name, not a template", proxy_node.source)
    toxic = expect_map(_present(fault, "toxic"), "toxic")
    check_keys(toxic, TOXIC_KEYS, "in toxic")
    toxic_type = expect_choice(required(toxic, "type", "in toxic"), "type", TOXIC_ATTRIBUTES)
    stream, toxicity = toxic.get("stream"), toxic.get("toxicity")
    attributes = toxic.get("attributes")
    return ToxiproxyFault(
        api=(_url(api, "api", templates) if api is not None
             else Static(DEFAULT_TOXIPROXY_API)),
        proxy=proxy,
        toxic_type=toxic_type,
        attributes=_toxic_attributes(attributes, toxic_type, toxic, templates),
        stream=cast(Any, expect_choice(stream, "stream", STREAMS)) if stream is not None
        else "downstream",
        toxicity=_probability(toxicity, "toxicity") if toxicity is not None else 1.0,
    )


def _toxic_attributes(node: Node | None, toxic_type: str, toxic: Map,
                      templates: Templates) -> Renderable:
    """Integer attributes of the toxic's type (templates are checked by Toxiproxy)."""
    names = TOXIC_ATTRIBUTES[toxic_type]
    attributes = expect_map(node, "attributes") if node is not None else Map({}, toxic.source)
    where = f"in attributes of a {toxic_type} toxic"
    check_keys(attributes, names, where)
    for name in REQUIRED_ATTRIBUTES.get(toxic_type, ()):
        if name not in attributes:
            source = attributes.source if node is not None else toxic.source
            raise PlanError(f"missing required key '{name}' {where}", source)
    for name, entry in attributes.items():
        value = entry.value
        if not (isinstance(value, Scalar) and isinstance(value.value, str)
                and is_template(value.value)):
            expect_int(value, name)
    return templates.compile_node(attributes)


def _chaostoolkit(fault: Map, templates: Templates,
                  requests: Collection[str]) -> ChaosToolkitFault:
    configuration = fault.get("configuration")
    if configuration is not None:
        expect_map(configuration, "configuration")
        _refuse_templates(configuration)
    return ChaosToolkitFault(
        action=_activity(_present(fault, "action"), "action"),
        rollback=_activity(_present(fault, "rollback"), "rollback"),
        configuration=plain(configuration) if configuration is not None else {},
    )


def _activity(node: Node, what: str) -> dict[str, Any]:
    """The basic shape of a Chaos Toolkit activity: `type`, `name`, `provider`
    with the keys its type needs. Other keys are Chaos Toolkit's business."""
    activity = expect_map(node, what)
    where = f"in {what}"
    expect_choice(required(activity, "type", where), "type", ACTIVITY_TYPES)
    expect_str(required(activity, "name", where), "name")
    if "provider" not in activity:
        raise PlanError(f"missing required key 'provider' {where}", activity.source,
                        "a Chaos Toolkit activity needs type, name and provider")
    provider = expect_map(activity.get("provider"), "provider")
    kind = expect_choice(required(provider, "type", "in provider"), "type", PROVIDER_REQUIRED)
    for key in PROVIDER_REQUIRED[kind]:
        expect_str(required(provider, key, f"in {kind} provider"), key)
    _refuse_templates(activity)
    return cast(dict[str, Any], plain(activity))


def _refuse_templates(node: Node) -> None:
    """Chaos Toolkit has its own substitution (`${name}` from configuration);
    a `{{ }}` would reach it unrendered."""
    if isinstance(node, Map):
        for entry in node.entries.values():
            _refuse_templates(entry.value)
    elif isinstance(node, Seq):
        for item in node.items:
            _refuse_templates(item)
    elif isinstance(node.value, str) and is_template(node.value):
        raise PlanError("templates are not rendered in Chaos Toolkit activities", node.source,
                        "use Chaos Toolkit's ${name} with configuration, e.g. "
                        "{type: env, key: NAME}")


# ---------------------------------------------------------------- client side

def _abort(fault: Map, templates: Templates, requests: Collection[str]) -> AbortFault:
    return AbortFault(requests=_requests(fault, requests),
                      probability=_optional_probability(fault))


def _duplicate(fault: Map, templates: Templates, requests: Collection[str]) -> DuplicateFault:
    copies, delay = fault.get("copies"), fault.get("delay")
    return DuplicateFault(
        requests=_requests(fault, requests),
        probability=_optional_probability(fault),
        copies=_at_most(copies, "copies", 1, MAX_COPIES) if copies is not None else 1,
        delay=expect_duration(delay, "delay") if delay is not None else None,
    )


def _reorder(fault: Map, templates: Templates, requests: Collection[str]) -> ReorderFault:
    window, max_wait = fault.get("window"), fault.get("maxWait")
    return ReorderFault(
        requests=_requests(fault, requests),
        window=_at_most(window, "window", 2, MAX_WINDOW) if window is not None else 5,
        max_wait=(expect_duration(max_wait, "maxWait", positive=True) if max_wait is not None
                  else 1.0),
    )


def _tamper(fault: Map, templates: Templates, requests: Collection[str]) -> TamperFault:
    mode_node = _present(fault, "mode")
    mode = cast(TamperMode, expect_choice(mode_node, "mode", TAMPER_MODES))
    secret, expect = fault.get("secret"), fault.get("expect")
    if mode in SIGNING_MODES and secret is None:
        raise PlanError(f"mode {mode} signs the request anew and needs 'secret'",
                        mode_node.source, 'e.g. secret: "{{ secrets.STRIPE_WEBHOOK_SECRET }}"')
    if mode not in SIGNING_MODES and secret is not None:
        raise PlanError(f"secret: only modes {' and '.join(SIGNING_MODES)} sign anew; "
                        f"mode {mode} does not use it", fault.key_source("secret"))
    return TamperFault(
        requests=_requests(fault, requests),
        mode=mode,
        expect=parse_expect(expect) if expect is not None else ((200,) if mode == "rotation"
                                                            else (400,)),
        header=_header(fault, "Stripe-Signature"),
        secret=(templates.compile_string(expect_str(secret, "secret"), secret.source)
                if secret is not None else None),
        probability=_optional_probability(fault),
    )


def _timeout_retry(fault: Map, templates: Templates,
                   requests: Collection[str]) -> TimeoutRetryFault:
    mode, timeout, retries = (fault.get(key) for key in ("mode", "timeout", "retries"))
    return TimeoutRetryFault(
        requests=_requests(fault, requests),
        mode=cast(RetryMode, expect_choice(mode, "mode", RETRY_MODES)) if mode is not None
        else "retry",
        timeout=expect_duration(timeout, "timeout", positive=True) if timeout is not None
        else 0.05,
        retries=_at_most(retries, "retries", 1, MAX_RETRIES) if retries is not None else 1,
        header=_header(fault, "Idempotency-Key"),
    )


MAX_COPIES = 100
"""Copies of one request a `duplicate` fault sends (each is a request more)."""
MAX_WINDOW = 10_000
"""Requests a `reorder` fault holds at once."""
MAX_RETRIES = 100
"""Retries of one request a `timeout-retry` fault sends."""


def _at_most(node: Node, what: str, minimum: int, maximum: int) -> int:
    value = expect_int(node, what, minimum=minimum)
    if value > maximum:
        raise PlanError(f"{what}: at most {maximum:,}, got {value:,} (every one is another "
                        "request the fault sends or holds)", node.source)
    return value


def _present(fault: Map, key: str) -> Node:
    """A key of REQUIRED_OPTIONS, which the caller has already required."""
    node = fault.get(key)
    assert node is not None, key
    return node


def _requests(fault: Map, defined: Collection[str]) -> tuple[str, ...]:
    """Request names (the `name` of a request step) that exist in some flow."""
    node = expect_seq(_present(fault, "requests"), "requests")
    names = []
    for item in node.items:
        name = expect_str(item, "requests")
        if name not in defined:
            raise PlanError(f"requests: no flow has a request named '{name}'", item.source,
                            did_you_mean(name, defined))
        names.append(name)
    if not names:
        raise PlanError("requests: the list is empty", node.source)
    return tuple(dict.fromkeys(names))


def _optional_probability(fault: Map) -> float:
    node = fault.get("probability")
    return _probability(node, "probability") if node is not None else 1.0


def _probability(node: Node, what: str) -> float:
    value = expect_number(node, what)
    if not 0 < value <= 1:
        raise PlanError(f"{what}: must be greater than 0 and at most 1, got {value:g}",
                        node.source)
    return value


def _header(fault: Map, default: str) -> str:
    node = fault.get("header")
    if node is None:
        return default
    name = expect_str(node, "header")
    if not _HEADER_NAME.fullmatch(name):
        raise PlanError(f"header: '{name}' is not a valid header name", node.source)
    return name


ACTION_PARSERS: Mapping[str, ActionParser] = {
    "http": _http,
    "command": _command,
    "toxiproxy": _toxiproxy,
    "chaostoolkit": _chaostoolkit,
    "abort": _abort,
    "duplicate": _duplicate,
    "reorder": _reorder,
    "tamper": _tamper,
    "timeout-retry": _timeout_retry,
}
