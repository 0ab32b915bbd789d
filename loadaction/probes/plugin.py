"""Probes as a plugin of the engine: one sampling task per probe, started
when the load starts and stopped in `close()`, however the run ends.

Each probe samples at t=0 and then at every multiple of its interval on the
run clock (a late wake-up skips to the next multiple, it never drifts), and
every reading becomes a gauge sample timed when it was read. A failure never
ends the run and is never silent: it is counted in `probe_errors{probe,error}`
and kept (masked) as the probe's last error; a budget on a metric that got
no samples ends as `no data`.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from loadaction.engine.clock import RunClock
from loadaction.engine.hooks import Attribution, FinishedLoad, LoadContext
from loadaction.engine.layers import RequestLayer
from loadaction.engine.safety import host_allowed
from loadaction.masking import Masker
from loadaction.metrics.registry import MetricInfo, Registry
from loadaction.plan.model import Plan
from loadaction.plan.probes import (
    PROBE_ERRORS, CommandProbe, PostgresProbe, Probe, ProbeKind, PrometheusProbe, absolute_url,
)
from loadaction.probes.command import CommandSampler
from loadaction.probes.postgres import PostgresSampler
from loadaction.probes.prometheus import PrometheusSampler
from loadaction.probes.report import (
    ProbeErrorKind, ProbeFailure, ProbesReport, ProbeStatus, Reading, SeriesPoints, Statement,
    Tags,
)
from loadaction.probes.series import PointStore


# The kind an unforeseen exception of a probe's sampler is counted under.
_UNFORESEEN = {
    ProbeKind.PROMETHEUS: ProbeErrorKind.PARSE,
    ProbeKind.POSTGRES: ProbeErrorKind.QUERY,
    ProbeKind.COMMAND: ProbeErrorKind.COMMAND_FAILED,
}


class Sampler(Protocol):
    async def sample(self) -> tuple[list[Reading], list[ProbeFailure]]: ...

    async def close(self) -> None: ...


class _Refused:
    """A probe that cannot sample at all (its host is not allowed, its URL,
    DSN or argv did not render): every interval is the same counted error,
    and nothing is sent."""

    def __init__(self, failure: ProbeFailure) -> None:
        self._failure = failure

    async def sample(self) -> tuple[list[Reading], list[ProbeFailure]]:
        raise ProbeFailure(self._failure.kind, self._failure.message)

    async def close(self) -> None:
        pass


@dataclass(slots=True)
class _Live:
    probe: Probe
    status: ProbeStatus
    sampler: Sampler | None = None
    first: dict[tuple[str, Tags], float] = field(default_factory=dict)  # for `delta`


class ProbesPlugin:
    name = "probes"
    layers: tuple[RequestLayer, ...] = ()
    attribution: Attribution | None = None

    def __init__(self, plan: Plan, *, masker: Masker | None = None) -> None:
        self._target = plan.target
        self._allowed = frozenset(h.lower() for h in plan.allowed_hosts)
        self._mask: Callable[[str], str] = masker or Masker(plan.secrets.values())
        self.metrics: Mapping[str, MetricInfo] = {
            **{name: MetricInfo("gauge") for p in plan.probes for name in p.metric_names},
            PROBE_ERRORS: MetricInfo("counter"),
        }
        self._live = [_Live(p, ProbeStatus(p.name, p.kind.value, p.interval))
                      for p in plan.probes]
        self._stores: dict[tuple[str, Tags], PointStore] = {}
        self._registry: Registry | None = None
        self._clock: RunClock | None = None
        self._task: asyncio.Task[None] | None = None

    def attach(self, registry: Registry) -> None:
        self._registry = registry

    def load_started(self, ctx: LoadContext) -> None:
        self._clock = ctx.clock
        self._task = asyncio.create_task(self._run(ctx.render))

    async def scenario_started(self, name: str) -> None:
        pass

    def scenario_ended(self, name: str) -> None:
        pass

    async def close(self) -> None:
        """Stops sampling at once (a reading in flight is abandoned) and closes connections."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
            except Exception as exc:  # a bug in sampling: reported on every probe, not a crash
                for live in self._live:
                    self._failed(live, ProbeFailure(_UNFORESEEN[live.probe.kind],
                                                    f"sampling stopped: {exc!r}"))
        for live in self._live:
            if live.sampler is not None:
                try:
                    await live.sampler.close()
                except Exception:  # closing a broken connection must not mask the run's end
                    pass

    def contribute(self, finished: FinishedLoad) -> ProbesReport:
        series = tuple(SeriesPoints(metric, tags, store.snapshot())
                       for (metric, tags), store in self._stores.items())
        statements: list[Statement] = []
        for live in self._live:
            if isinstance(live.sampler, PostgresSampler):
                statements += live.sampler.statements()
        return ProbesReport(tuple(live.status for live in self._live), series, tuple(statements))

    # ------------------------------------------------------------ sampling

    async def _run(self, render: Callable[[Any], Any]) -> None:
        async with asyncio.TaskGroup() as tg:
            for live in self._live:
                try:
                    enabled = live.probe.when is None or bool(render(live.probe.when))
                except Exception as exc:  # a template error: the probe is off, and says why
                    self._failed(live, ProbeFailure(_UNFORESEEN[live.probe.kind],
                                                    f"when: {exc}"))
                    enabled = False
                live.status.enabled = enabled
                if not enabled:
                    continue
                # 0 errors is data: `probe_errors: [count==0]` passes on a healthy probe
                assert self._registry is not None
                self._registry.add(PROBE_ERRORS, 0, (("probe", live.probe.name),))
                try:
                    live.sampler = self._sampler(live.probe, render)
                except ProbeFailure as exc:
                    live.sampler = _Refused(exc)
                except Exception as exc:  # the URL, DSN or argv did not render
                    live.sampler = _Refused(ProbeFailure(_UNFORESEEN[live.probe.kind],
                                                         self._mask(f"template: {exc}")))
                tg.create_task(self._loop(live))

    def _sampler(self, probe: Probe, render: Callable[[Any], Any]) -> Sampler:
        spec = probe.spec
        if isinstance(spec, PrometheusProbe):
            url = spec.static_url or absolute_url(self._target, str(render(spec.url)))
            parts = urlsplit(url)
            try:
                port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            except ValueError:  # a port that is no number: no host it names is allowed
                port = None
            self._check_host(parts.hostname, port, url)
            headers = [(k, str(render(v))) for k, v in spec.headers]
            return PrometheusSampler(url, headers, spec.metrics, probe.timeout)
        if isinstance(spec, PostgresProbe):
            dsn = str(render(spec.dsn))
            host, port = dsn_host(dsn)
            if host is not None:  # None: a local socket, which reaches no other machine
                self._check_host(host, port, "the postgres DSN")
            return PostgresSampler(dsn, spec.application_name, spec.statements, probe.timeout,
                                   probe.name, self._mask)
        assert isinstance(spec, CommandProbe)
        return CommandSampler([str(render(arg)) for arg in spec.argv], spec.metric,
                              probe.timeout)

    def _check_host(self, host: str | None, port: int | None, what: str) -> None:
        if host_allowed(self._allowed, host, port):
            return
        host = (host or "").lower()
        raise ProbeFailure(ProbeErrorKind.HOST_NOT_ALLOWED,
                           self._mask(f"{what}: host '{host}' is not in the allowed hosts; "
                                      "add it to allowedHosts or pass --allow-host"))

    async def _loop(self, live: _Live) -> None:
        clock = self._clock
        assert clock is not None and live.sampler is not None
        interval = live.probe.interval
        tick = 0
        while True:
            delay = clock.t0 + tick * interval - clock.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                readings, failures = await live.sampler.sample()
            except ProbeFailure as exc:
                readings, failures = [], [exc]
            except Exception as exc:  # unforeseen: still a counted error, never a crash
                readings, failures = [], [ProbeFailure(_UNFORESEEN[live.probe.kind],
                                                       f"{type(exc).__name__}: {exc}")]
            t = clock.elapsed()
            for reading in readings:
                self._record(live, reading, t)
            for failure in failures:
                self._failed(live, failure)
            tick = max(tick + 1, math.floor(clock.elapsed() / interval) + 1)

    def _record(self, live: _Live, reading: Reading, t: float) -> None:
        assert self._registry is not None
        tags = _tags(live.probe.name, reading.tags)
        value = reading.value
        if _is_delta(live.probe, reading.metric):
            value -= live.first.setdefault((reading.metric, tags), value)
        self._registry.sink(reading.metric, tags).add(value, t)  # type: ignore[call-arg]
        store = self._stores.get((reading.metric, tags))
        if store is None:
            store = self._stores[(reading.metric, tags)] = PointStore()
        store.add(t, value)
        live.status.samples += 1

    def _failed(self, live: _Live, failure: ProbeFailure) -> None:
        status = live.status
        status.errors += 1
        status.errors_by_kind[failure.kind.value] = status.errors_by_kind.get(failure.kind.value,
                                                                              0) + 1
        status.last_error = self._mask(failure.message)
        if self._registry is not None:
            tags = (("error", failure.kind.value), ("probe", live.probe.name))
            self._registry.add(PROBE_ERRORS, 1, tags)


def _tags(probe: str, labels: Tags) -> Tags:
    """The series' labels as tags, and probe:<name> (which wins over a label of that name)."""
    return tuple(sorted({**dict(labels), "probe": probe}.items()))


def _is_delta(probe: Probe, metric: str) -> bool:
    spec = probe.spec
    return isinstance(spec, PrometheusProbe) and any(m.delta and m.metric == metric
                                                     for m in spec.metrics)


_KEYWORD_HOST = re.compile(r"(?:^|\s)host\s*=\s*'?([^\s']+)")
_KEYWORD_PORT = re.compile(r"(?:^|\s)port\s*=\s*'?([0-9]+)")


def dsn_host(dsn: str) -> tuple[str | None, int]:
    """The host and port of a URL DSN (`postgresql://u@h:5432/db`, or
    `?host=h`) or a keyword one (`host=h port=5432 dbname=db`). None for a
    local socket (a directory, or no host at all: libpq's default)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        try:
            port = parts.port
        except ValueError:
            port = None
        query = parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or [None])[0]
        if port is None and (query.get("port") or [""])[0].isdigit():
            port = int(query["port"][0])
    else:
        found = _KEYWORD_HOST.search(dsn)
        host = found.group(1) if found else None
        found = _KEYWORD_PORT.search(dsn)
        port = int(found.group(1)) if found else None
    if host is None or host.startswith("/"):
        return None, port or 5432
    return host.lower(), port or 5432
