"""The sampling schedule on an injected run clock: a probe reads at t=0 and
then at every multiple of its interval, however long a reading takes on the
run clock (no drift), and close() stops it at once.

The sampler stands in for a slow target: each reading moves the run clock
on by half an interval without taking real time, so a loop that slept a
whole interval after each reading would read at 0, 1.5, 3, ... intervals."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import pytest

import loadaction.probes.plugin as plugin_module
from loadaction.engine.clock import RunClock
from loadaction.engine.hooks import LoadContext
from loadaction.metrics.registry import Registry
from loadaction.plan import load_plan
from loadaction.probes.plugin import ProbesPlugin
from loadaction.probes.report import Reading

INTERVAL_S = 0.4
READS = 8


def test_readings_stay_on_the_interval_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan_path = tmp_path / "plan.yml"
    plan_path.write_text(f"""
target: http://127.0.0.1:9
probes:
  q: {{command: [echo, "1"], metric: depth, interval: {INTERVAL_S * 1000:g}ms}}
scenarios:
  s: {{executor: shared-iterations, vus: 1, iterations: 1, exec: f}}
flows:
  f: [{{request: {{url: /}}}}]
""")
    plan = load_plan(plan_path, env={})
    offset = [0.0]
    clock = RunClock(now=lambda: time.monotonic() + offset[0])
    calls: list[float] = []

    class SlowReading:
        def __init__(self, argv: Any, metric: str, timeout_s: float) -> None:
            self.metric = metric

        async def sample(self) -> tuple[list[Reading], list[Any]]:
            calls.append(clock.elapsed())
            offset[0] += INTERVAL_S / 2  # the reading takes half an interval of run time
            return [Reading(self.metric, (), float(len(calls)))], []

        async def close(self) -> None:
            pass

    monkeypatch.setattr(plugin_module, "CommandSampler", SlowReading)

    async def run() -> Registry:
        plugin = ProbesPlugin(plan)
        registry = Registry(plugin.metrics)
        plugin.attach(registry)
        clock.start()
        plugin.load_started(LoadContext(clock, asyncio.Event(), lambda status, reason: None,
                                        lambda tpl: tpl.render({"env": {}, "secrets": {},
                                                                "vars": {}})))
        while len(calls) < READS:
            await asyncio.sleep(0.01)
        await plugin.close()
        stopped = len(calls)
        await asyncio.sleep(INTERVAL_S * 1.5)
        assert len(calls) == stopped  # close() ended the sampling
        return registry

    registry = asyncio.run(run())
    ticks = [math.floor(t / INTERVAL_S + 1e-9) for t in calls]
    lateness = [t - tick * INTERVAL_S for t, tick in zip(calls, ticks)]
    assert ticks[0] == 0 and ticks == sorted(set(ticks))  # t=0 first, never twice a tick
    # each reading starts within the event loop's wake-up latency of its tick,
    # not half an interval later per reading as a drifting loop would
    assert max(lateness) < INTERVAL_S / 2, lateness
    # a tick is skipped only when the reading before it ran past it
    for k in range(len(ticks) - 1):
        if ticks[k + 1] > ticks[k] + 1:
            assert lateness[k] + INTERVAL_S / 2 > INTERVAL_S * (ticks[k + 1] - ticks[k] - 1)
    sink = registry.select("depth")
    assert sink is not None and sink.count == len(calls)
