"""`probes:`: what the target's side says while the load runs (its /metrics,
its PostgreSQL, a command's number), read into immutable probe specs.

Everything checkable before the run is checked here, at the key's line: the
series selectors (a small Prometheus grammar), metric names (a probe metric
must not shadow a built-in, custom or other probe's metric, or a budget on
it would judge the wrong numbers), intervals, static URLs' hosts against the
allowlist, and that a DSN's password comes from `secrets`, never the plan.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from loadaction.errors import PlanError, Source
from loadaction.masking import url_passwords
from loadaction.plan.fields import (
    check_keys, expect_bool, expect_duration, expect_int, expect_map, expect_seq, expect_str,
    expect_text, required,
)
from loadaction.plan.hosts import check_url_host
from loadaction.plan.source import Map, Node
from loadaction.plan.templates import Templates, is_template

if TYPE_CHECKING:
    from loadaction.plan.model import Renderable

MIN_INTERVAL_S = 0.1
DEFAULT_INTERVAL_S = 1.0
MAX_DEFAULT_TIMEOUT_S = 5.0
MAX_STATEMENTS = 100

PROBE_ERRORS = "probe_errors"
"""The counter every probe's failures go to, tagged probe:<name>, error:<kind>."""

POSTGRES_METRICS = (
    "pg_connections", "pg_connections_total", "pg_locks_waiting", "pg_max_connections",
    "pg_query_calls", "pg_query_mean_ms", "pg_query_max_ms",
)

_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_PROBE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_COMMON_KEYS = ("interval", "timeout", "when")
_KIND_KEYS = {
    "prometheus": ("prometheus", "metrics"),
    "postgres": ("postgres",),
    "command": ("command", "metric"),
}


class ProbeKind(StrEnum):
    PROMETHEUS = "prometheus"
    POSTGRES = "postgres"
    COMMAND = "command"


# ------------------------------------------------------------ series selector

class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    label: str
    op: MatchOp
    value: str
    pattern: re.Pattern[str] | None = None  # for =~ and !~: anchored, as Prometheus does

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label, "")  # a missing label is the empty string
        if self.op is MatchOp.EQ:
            return got == self.value
        if self.op is MatchOp.NE:
            return got != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(got) is not None
        return found if self.op is MatchOp.RE else not found


@dataclass(frozen=True, slots=True)
class SeriesSelector:
    """`name{label op "value", ...}`: the series of one sample name whose
    labels match every matcher."""

    name: str
    matchers: tuple[LabelMatcher, ...]
    text: str

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return name == self.name and all(m.matches(labels) for m in self.matchers)


_SERIES_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OP = re.compile(r"=~|!~|!=|=")
_SPACE = re.compile(r"\s*")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


def parse_series_selector(text: str) -> SeriesSelector:
    """Prometheus's instant-vector selector, without offsets or ranges.
    ValueError with one line naming what is wrong and where."""
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    name = _SERIES_NAME.match(text, pos)
    if name is None:
        raise ValueError(f"invalid series selector {text!r}: expected a metric name first")
    pos = _SPACE.match(text, name.end()).end()  # type: ignore[union-attr]
    matchers: list[LabelMatcher] = []
    if pos < len(text) and text[pos] == "{":
        pos += 1
        while True:
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            if pos < len(text) and text[pos] == "}":
                pos += 1
                break
            label = _LABEL.match(text, pos)
            if label is None:
                raise ValueError(f"invalid series selector {text!r}: expected a label name "
                                 f"at column {pos + 1}")
            pos = _SPACE.match(text, label.end()).end()  # type: ignore[union-attr]
            op = _OP.match(text, pos)
            if op is None:
                raise ValueError(f"invalid series selector {text!r}: expected =, !=, =~ or !~ "
                                 f"after '{label.group()}'")
            pos = _SPACE.match(text, op.end()).end()  # type: ignore[union-attr]
            value, pos = _quoted(text, pos)
            matchers.append(_matcher(text, label.group(), MatchOp(op.group()), value))
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            if pos < len(text) and text[pos] == "}":
                pos += 1
                break
            raise ValueError(f"invalid series selector {text!r}: expected ',' or '}}' "
                             f"at column {pos + 1}")
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    if pos != len(text):
        raise ValueError(f"invalid series selector {text!r}: unexpected text at column {pos + 1}")
    return SeriesSelector(name.group(), tuple(matchers), text.strip())


def _quoted(text: str, pos: int) -> tuple[str, int]:
    if pos >= len(text) or text[pos] not in "\"'":
        raise ValueError(f"invalid series selector {text!r}: expected a quoted value "
                         f"at column {pos + 1}")
    quote, pos, out = text[pos], pos + 1, []
    while pos < len(text):
        c = text[pos]
        if c == quote:
            return "".join(out), pos + 1
        if c == "\\":
            escaped = _ESCAPES.get(text[pos + 1: pos + 2])
            if escaped is None:
                raise ValueError(f"invalid series selector {text!r}: unknown escape "
                                 f"at column {pos + 1}")
            out.append(escaped)
            pos += 2
            continue
        out.append(c)
        pos += 1
    raise ValueError(f"invalid series selector {text!r}: unterminated string")


def _matcher(text: str, label: str, op: MatchOp, value: str) -> LabelMatcher:
    if op in (MatchOp.EQ, MatchOp.NE):
        return LabelMatcher(label, op, value)
    try:
        return LabelMatcher(label, op, value, re.compile(value))
    except re.error as exc:
        raise ValueError(f"invalid series selector {text!r}: bad regex for '{label}': {exc}"
                         ) from None


# ------------------------------------------------------------------- model

@dataclass(frozen=True, slots=True)
class ProbeMetric:
    """A plan metric fed by one selector; `delta`: each series minus its first sample."""

    metric: str
    selector: SeriesSelector
    delta: bool
    source: Source


@dataclass(frozen=True, slots=True)
class PrometheusProbe:
    url: Renderable  # absolute, or relative to the plan's target
    static_url: str | None  # the URL when it is no template (its host was checked at load)
    headers: tuple[tuple[str, Renderable], ...]
    metrics: tuple[ProbeMetric, ...]


@dataclass(frozen=True, slots=True)
class PostgresProbe:
    dsn: Renderable  # reads secrets
    application_name: str | None
    statements: int  # top N of pg_stat_statements; 0: not read


@dataclass(frozen=True, slots=True)
class CommandProbe:
    argv: tuple[Renderable, ...]
    metric: str
    metric_source: Source


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    kind: ProbeKind
    interval: float
    timeout: float
    when: Renderable | None
    spec: PrometheusProbe | PostgresProbe | CommandProbe
    source: Source

    @property
    def metric_names(self) -> tuple[str, ...]:
        spec = self.spec
        if isinstance(spec, PrometheusProbe):
            return tuple(dict.fromkeys(m.metric for m in spec.metrics))
        if isinstance(spec, CommandProbe):
            return (spec.metric,)
        return POSTGRES_METRICS


# ----------------------------------------------------------------- parsing

def parse_probes(node: Node | None, *, templates: Templates, target: str,
                 allowed_hosts: Collection[str], taken: Collection[str]) -> tuple[Probe, ...]:
    """`taken`: metric names already in use (built-in, chaos and custom)."""
    if node is None:
        return ()
    probes: list[Probe] = []
    owners: dict[str, str] = {}  # probe metric -> the probe that records it
    for name, entry in expect_map(node, "probes").items():
        if not _PROBE_NAME.fullmatch(name):
            raise PlanError(f"probe name '{name}' must be letters, digits, '_', '.' or '-'",
                            entry.key_source)
        probe = _probe(name, expect_map(entry.value, f"probe '{name}'"), templates, target,
                       allowed_hosts)
        for metric, source in _metric_sources(probe):
            if metric in taken or metric == PROBE_ERRORS:
                raise PlanError(f"probe '{name}': metric '{metric}' is already a built-in or "
                                "custom metric; choose another name", source)
            if owners.get(metric, name) != name:
                raise PlanError(f"probe '{name}': metric '{metric}' is already recorded by "
                                f"probe '{owners[metric]}'", source)
            owners[metric] = name
        probes.append(probe)
    return tuple(probes)


def _metric_sources(probe: Probe) -> list[tuple[str, Source]]:
    spec = probe.spec
    if isinstance(spec, PrometheusProbe):
        return [(m.metric, m.source) for m in spec.metrics]
    if isinstance(spec, CommandProbe):
        return [(spec.metric, spec.metric_source)]
    return [(metric, probe.source) for metric in probe.metric_names]


def _probe(name: str, node: Map, templates: Templates, target: str,
           allowed_hosts: Collection[str]) -> Probe:
    kinds = [kind for kind in ProbeKind if kind.value in node]
    if not kinds:  # a misspelt kind is an unknown key, with its suggestion
        check_keys(node, (*(k for keys in _KIND_KEYS.values() for k in keys), *_COMMON_KEYS),
                   f"in probe '{name}'")
    if len(kinds) != 1:
        found = " and ".join(f"'{k.value}'" for k in kinds) or "none"
        raise PlanError(f"probe '{name}': expected exactly one of prometheus, postgres or "
                        f"command, got {found}", node.source)
    kind = kinds[0]
    where = f"in probe '{name}'"
    check_keys(node, (*_KIND_KEYS[kind.value], *_COMMON_KEYS), where)
    interval = DEFAULT_INTERVAL_S
    if (interval_node := node.get("interval")) is not None:
        interval = expect_duration(interval_node, "interval", positive=True)
        if interval < MIN_INTERVAL_S:
            raise PlanError(f"interval: must be at least 100ms, got {interval * 1000:g}ms",
                            interval_node.source)
    timeout = min(interval, MAX_DEFAULT_TIMEOUT_S)
    if (timeout_node := node.get("timeout")) is not None:
        timeout = expect_duration(timeout_node, "timeout", positive=True)
    when = None
    if (when_node := node.get("when")) is not None:
        when = templates.compile_string(expect_text(when_node, "when"), when_node.source)
    spec: PrometheusProbe | PostgresProbe | CommandProbe
    if kind is ProbeKind.PROMETHEUS:
        spec = _prometheus(node, where, templates, target, allowed_hosts)
    elif kind is ProbeKind.POSTGRES:
        spec = _postgres(expect_map(required(node, "postgres", where), "postgres"), templates)
    else:
        spec = _command(node, where, templates)
    return Probe(name, kind, interval, timeout, when, spec, node.source)


def _prometheus(node: Map, where: str, templates: Templates, target: str,
                allowed_hosts: Collection[str]) -> PrometheusProbe:
    config = expect_map(required(node, "prometheus", where), "prometheus")
    check_keys(config, ("url", "headers"), "in prometheus")
    url_node = required(config, "url", "in prometheus")
    url_text = expect_str(url_node, "url")
    static_url = None
    if not is_template(url_text):
        static_url = absolute_url(target, url_text)
        check_url_host(static_url, url_node.source, allowed_hosts)
    headers: list[tuple[str, Renderable]] = []
    if (headers_node := config.get("headers")) is not None:
        for key, entry in expect_map(headers_node, "headers").items():
            value = expect_text(entry.value, f"headers.{key}")
            headers.append((key, templates.compile_string(value, entry.value.source)))
    metrics_node = expect_map(required(node, "metrics", where), "metrics")
    metrics = []
    for metric, entry in metrics_node.items():
        _check_metric_name(metric, entry.key_source)
        value = entry.value
        delta = False
        if isinstance(value, Map):
            check_keys(value, ("series", "delta"), f"in metric '{metric}'")
            series_node = required(value, "series", f"in metric '{metric}'")
            if (delta_node := value.get("delta")) is not None:
                delta = expect_bool(delta_node, "delta")
        else:
            series_node = value
        text = expect_str(series_node, f"metric '{metric}'")
        try:
            selector = parse_series_selector(text)
        except ValueError as exc:
            raise PlanError(str(exc), series_node.source) from None
        metrics.append(ProbeMetric(metric, selector, delta, entry.key_source))
    if not metrics:
        raise PlanError("metrics: a prometheus probe needs at least one metric",
                        metrics_node.source)
    return PrometheusProbe(templates.compile_string(url_text, url_node.source), static_url,
                           tuple(headers), tuple(metrics))


def _postgres(config: Map, templates: Templates) -> PostgresProbe:
    check_keys(config, ("dsn", "application_name", "statements"), "in postgres")
    dsn_node = required(config, "dsn", "in postgres")
    dsn = expect_str(dsn_node, "dsn")
    literal = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", dsn)
    if url_passwords(literal):
        raise PlanError("dsn: the password is written in the plan; read the DSN from secrets",
                        dsn_node.source, 'dsn: "{{ secrets.DATABASE_URL }}"')
    first = len(templates.references)
    compiled = templates.compile_string(dsn, dsn_node.source)
    if not any(ref.root == "secrets" for ref in templates.references[first:]):
        raise PlanError("dsn: must be templated from secrets", dsn_node.source,
                        'declare it under secrets: and write dsn: "{{ secrets.DATABASE_URL }}"')
    application = None
    if (app_node := config.get("application_name")) is not None:
        application = expect_str(app_node, "application_name")
    statements = 10
    if (statements_node := config.get("statements")) is not None:
        statements = expect_int(statements_node, "statements")
        if statements > MAX_STATEMENTS:
            raise PlanError(f"statements: at most {MAX_STATEMENTS}, got {statements}",
                            statements_node.source)
    if importlib.util.find_spec("asyncpg") is None:
        raise PlanError("a postgres probe needs asyncpg, which is not installed", config.source,
                        "pip install 'loadaction[postgres]'")
    return PostgresProbe(compiled, application, statements)


def _command(node: Map, where: str, templates: Templates) -> CommandProbe:
    argv_node = expect_seq(required(node, "command", where), "command")
    if not argv_node.items:
        raise PlanError("command: expected the program and its arguments", argv_node.source)
    argv = tuple(templates.compile_string(expect_text(item, "command"), item.source)
                 for item in argv_node.items)
    metric_node = required(node, "metric", where)
    metric = expect_str(metric_node, "metric")
    _check_metric_name(metric, metric_node.source)
    return CommandProbe(argv, metric, metric_node.source)


def _check_metric_name(name: str, source: Source) -> None:
    if not _METRIC_NAME.fullmatch(name):
        raise PlanError(f"metric name '{name}' must start with a letter or '_' and contain "
                        "only letters, digits and '_'", source)


def absolute_url(target: str, url: str) -> str:
    """A probe URL relative to the plan's target (`/metrics`), or absolute."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
        return url
    return urljoin(target.rstrip("/") + "/", url.lstrip("/"))
