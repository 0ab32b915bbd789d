"""Chaos as a plugin of the engine: the fault timeline, the client-side
faults (a request layer) and the phase attribution, wired to the run hooks.

The engine never imports this; the session hands it to the run. At the end
it contributes a `ChaosReport`: what happened to each fault, the steady-state
verdicts per phase and the recovery verdicts.

With --workers the parent's plugin runs the timeline (`on_window` publishes
the server-side faults' windows to the workers) and each worker's is a
`follower` (chaos/timeline.py): the workers send the requests, so they play
the client-side faults and attribute the phases.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loadaction.chaos.adapters import FaultAdapter, build_adapter
from loadaction.chaos.client import ClientFaults
from loadaction.chaos.phases import PhaseVerdict, judge_phases
from loadaction.chaos.recovery import RecoveryResult, judge_recovery
from loadaction.chaos.timeline import ChaosTimeline, FaultRecord
from loadaction.engine.hooks import Attribution, FinishedLoad, LoadContext
from loadaction.engine.layers import RequestLayer
from loadaction.metrics.registry import CHAOS_METRICS, MetricInfo, Registry
from loadaction.metrics.verdict import Verdict
from loadaction.plan.model import Fault


@dataclass(frozen=True)
class ChaosReport:
    faults: tuple[FaultRecord, ...]
    phases: tuple[PhaseVerdict, ...]
    recoveries: tuple[RecoveryResult, ...]

    @property
    def rollback_failures(self) -> list[FaultRecord]:
        return [r for r in self.faults if r.rollback_failed]

    @property
    def failed_recoveries(self) -> int:
        return sum(r.verdict is not Verdict.PASS for r in self.recoveries)


class _Attribution:
    """The timeline's labels, before the timeline exists: `before`."""

    key = "phase"

    def __init__(self) -> None:
        self.timeline: ChaosTimeline | None = None

    def label_at(self, t: float) -> str:
        timeline = self.timeline
        return "before" if timeline is None else timeline.label_at(t)


class ChaosPlugin:
    name = "chaos"
    metrics: Mapping[str, MetricInfo] = CHAOS_METRICS

    def __init__(self, faults: tuple[Fault, ...], *, seed: int | None = None,
                 adapter_factory: Callable[..., FaultAdapter] = build_adapter,
                 follower: bool = False,
                 on_window: Callable[[FaultRecord], None] | None = None) -> None:
        self._faults = faults
        self._factory = adapter_factory
        self._follower = follower
        self._on_window = on_window
        self._early: list[tuple[str, float | None, float | None, float | None]] = []
        self._render: Callable[[Any], Any] = lambda tpl: None
        self.client = ClientFaults(random.Random(seed), render=lambda tpl: self._render(tpl))
        self._attribution = _Attribution()
        self.layers: tuple[RequestLayer, ...] = (self.client,)
        self.attribution: Attribution | None = self._attribution
        self.timeline: ChaosTimeline | None = None

    def attach(self, registry: Registry) -> None:
        ClientFaults.ensure_metrics(registry)

    def load_started(self, ctx: LoadContext) -> None:
        self._render = ctx.render
        self.timeline = ChaosTimeline(self._faults, render=ctx.render, client=self.client,
                                      clock=ctx.clock, stop=ctx.stop,
                                      adapter_factory=self._factory, follower=self._follower,
                                      on_window=self._on_window)
        self._attribution.timeline = self.timeline
        for window in self._early:
            self.timeline.follow(*window)
        self._early.clear()
        self.timeline.start()

    def follow(self, name: str, planned_at_s: float | None, started_at_s: float | None,
               ended_at_s: float | None) -> None:
        """A follower's news of a server-side fault's window; kept until the
        load starts here when it comes first (the parent's starts earlier)."""
        if self.timeline is None:
            self._early.append((name, planned_at_s, started_at_s, ended_at_s))
        else:
            self.timeline.follow(name, planned_at_s, started_at_s, ended_at_s)

    async def scenario_started(self, name: str) -> None:
        if self.timeline is not None:
            await self.timeline.scenario_started(name)

    def scenario_ended(self, name: str) -> None:
        pass

    async def close(self) -> None:
        if self.timeline is not None:
            await self.timeline.close()

    def contribute(self, finished: FinishedLoad) -> ChaosReport:
        records = tuple(self.timeline.records) if self.timeline is not None else tuple(
            FaultRecord(f) for f in self._faults)
        phases = judge_phases(finished.thresholds, self._faults, finished.registry,
                              finished.duration_s)
        recoveries = tuple(judge_recovery(r.fault.name, r.ended_at_s, budget, finished.series)
                           for r in records for budget in r.fault.recovery)
        return ChaosReport(records, tuple(phases), recoveries)
