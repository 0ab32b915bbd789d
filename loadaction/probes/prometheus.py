"""Scrapes a Prometheus metrics URL and picks series by name and labels.

The exposition text is parsed by prometheus-client's own parser, never by
hand: the format has escapes, timestamps and histogram suffixes enough that
a regex would read some target's output wrong.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from loadaction.plan.probes import ProbeMetric
from loadaction.probes.report import ProbeErrorKind, ProbeFailure, Reading

MAX_BODY_BYTES = 16 << 20


class PrometheusSampler:
    def __init__(self, url: str, headers: Sequence[tuple[str, str]],
                 metrics: Sequence[ProbeMetric], timeout_s: float) -> None:
        self.url = url
        self._headers = dict(headers)
        self._metrics = tuple(metrics)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def sample(self) -> tuple[list[Reading], list[ProbeFailure]]:
        """Every matching series of every metric; a metric that matched none
        is a `no_series` failure beside the readings of the others."""
        text = await self._fetch()
        try:
            samples = [(s.name, s.labels, s.value)
                       for family in text_string_to_metric_families(text)
                       for s in family.samples]
        except Exception as exc:  # the parser's errors are ValueErrors, and worse on garbage
            raise ProbeFailure(ProbeErrorKind.PARSE,
                               f"{self.url}: not Prometheus exposition text ({exc})") from None
        readings: list[Reading] = []
        failures: list[ProbeFailure] = []
        for metric in self._metrics:
            matched = [(labels, float(value)) for name, labels, value in samples
                       if metric.selector.matches(name, labels)]
            found = [Reading(metric.metric, tuple(sorted(labels.items())), value)
                     for labels, value in matched if math.isfinite(value)]
            if not matched:
                failures.append(ProbeFailure(
                    ProbeErrorKind.NO_SERIES,
                    f"{self.url}: no series matches {metric.selector.text} ({metric.metric})"))
            elif not found:  # NaN and infinities would poison min, max and the slope
                failures.append(ProbeFailure(
                    ProbeErrorKind.NOT_A_NUMBER,
                    f"{self.url}: {metric.selector.text} is not a finite number"))
            readings.extend(found)
        return readings, failures

    async def _fetch(self) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(self.url, headers=self._headers,
                                         allow_redirects=False) as response:
                if response.status != 200:
                    raise ProbeFailure(ProbeErrorKind.HTTP_STATUS,
                                       f"{self.url}: HTTP {response.status}")
                body = await response.content.read(MAX_BODY_BYTES + 1)
        except (TimeoutError, asyncio.TimeoutError):
            raise ProbeFailure(ProbeErrorKind.TIMEOUT,
                               f"{self.url}: no answer within {self._timeout.total:g}s") from None
        except aiohttp.ClientError as exc:
            raise ProbeFailure(ProbeErrorKind.CONNECT, f"{self.url}: {exc}") from None
        if len(body) > MAX_BODY_BYTES:
            raise ProbeFailure(ProbeErrorKind.PARSE, f"{self.url}: body over {MAX_BODY_BYTES} bytes")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProbeFailure(ProbeErrorKind.PARSE, f"{self.url}: body is not UTF-8") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
