"""The load phase's garbage-collector policy (engine/collector.py): no full
collection while the load runs, young ones as usual, everything restored."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadaction.engine import collector
from loadaction.engine.runner import Run
from loadaction.engine.status import RunStatus
from loadaction.plan import load_plan
from tests.target import Target


def _cycles(n: int) -> list[list[Any]]:
    """Long-lived reference cycles: what a full pass would walk."""
    out: list[list[Any]] = []
    for _ in range(n):
        a: list[Any] = []
        a.append(a)
        out.append(a)
    return out


def test_the_load_phase_runs_young_collections_but_no_full_one() -> None:
    before = gc.get_threshold()
    with collector.load_phase():
        assert gc.get_freeze_count() > 0  # what lived before the load is never scanned again
        full, young = gc.get_stats()[2]["collections"], gc.get_stats()[0]["collections"]
        kept = [_cycles(1000) for _ in range(200)]  # 200,000 promotions: a full pass, by default
        for _ in range(200_000):
            x: list[Any] = []
            x.append(x)  # garbage cycles for the young collections
        assert gc.get_stats()[2]["collections"] == full
        assert gc.get_stats()[0]["collections"] > young
        del kept
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_nested_load_phase_leaves_the_outer_in_charge() -> None:
    before = gc.get_threshold()
    with collector.load_phase():
        during = gc.get_threshold()
        with collector.load_phase():
            assert gc.get_threshold() == during
        assert gc.get_threshold() == during and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


class Watch:
    """A run plugin that notes the collector's settings when the load starts."""

    name = "watch"
    metrics: dict[str, Any] = {}
    layers = ()
    attribution = None

    def __init__(self) -> None:
        self.seen: tuple[int, int] | None = None

    def attach(self, registry: Any) -> None: ...

    def load_started(self, ctx: Any) -> None:
        self.seen = (gc.get_threshold()[2], gc.get_freeze_count())

    async def scenario_started(self, name: str) -> None: ...

    def scenario_ended(self, name: str) -> None: ...

    async def close(self) -> None: ...

    def contribute(self, finished: Any) -> Any:
        return None


def test_a_run_loads_under_the_policy_and_restores_it(target: Target,
                                                      write_plan: Callable[[str], Path]) -> None:
    plan = load_plan(write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f, vus: 2, iterations: 2}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """))
    before = gc.get_threshold()
    watch = Watch()
    outcome = asyncio.run(Run(plan, plugins=[watch]).execute())
    assert outcome.status is RunStatus.COMPLETE
    assert watch.seen is not None and watch.seen[0] > before[2] and watch.seen[1] > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
