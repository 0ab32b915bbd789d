"""The run-hook port: how plugins (chaos timelines, probes, capacity steps)
take part in a run without the engine knowing them.

A plugin is told when the load starts (with the run clock and a way to stop
the run), when each scenario starts and ends, and is closed whenever the run
ends, however it ends (normal end, abortOnFail, caps, SIGINT/SIGTERM, a
crash), before teardown. It may hand the engine request layers and an
attribution (a tag every sample carries, fixed at the request's send time),
declare metrics it records, and contribute a record to the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from loadaction.engine.clock import RunClock
from loadaction.engine.layers import RequestLayer
from loadaction.engine.status import RunStatus
from loadaction.metrics.registry import MetricInfo, Registry
from loadaction.plan.model import Threshold


class Attribution(Protocol):
    """A tag fixed when a request is sent (e.g. `phase`), on every sample
    derived from it: the request's own metrics, and the checks and records
    made from its response."""

    key: str

    def label_at(self, t: float) -> str:
        """The tag value for something sent at run-clock time `t`."""
        ...


@dataclass(frozen=True, slots=True)
class LoadContext:
    clock: RunClock
    stop: asyncio.Event  # set when the run is told to stop, for any reason
    request_stop: Callable[[RunStatus, str], None]
    render: Callable[[Any], Any]  # a plan template, rendered with env, secrets and the run's vars


@dataclass(frozen=True, slots=True)
class FinishedLoad:
    """What a plugin may judge once the run is over."""

    registry: Registry
    series: Mapping[str, Sequence[Mapping[str, Any]]]  # per scenario, per second
    thresholds: tuple[Threshold, ...]
    duration_s: float


class RunPlugin(Protocol):
    name: str  # its contribution's key in the outcome
    metrics: Mapping[str, MetricInfo]
    layers: tuple[RequestLayer, ...]
    attribution: Attribution | None

    def attach(self, registry: Registry) -> None:
        """Before anything runs: the registry its metrics live in."""
        ...

    def load_started(self, ctx: LoadContext) -> None: ...

    async def scenario_started(self, name: str) -> None: ...

    def scenario_ended(self, name: str) -> None: ...

    async def close(self) -> None:
        """The run is over or stopping: undo whatever the plugin changed."""
        ...

    def contribute(self, finished: FinishedLoad) -> Any:
        """A record for the outcome (under `name`)."""
        ...
