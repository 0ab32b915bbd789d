"""`per-vu-iterations`: each VU runs exactly `iterations` iterations; a
segment runs its share of the VUs, each with all its iterations (as k6)."""

from __future__ import annotations

import asyncio
from time import monotonic

from loadaction.engine.executors.base import Executor
from loadaction.plan.model import PerVUIterations


class PerVUIterationsExecutor(Executor):
    spec: PerVUIterations

    def planned_duration(self) -> float:
        return self.spec.max_duration

    async def execute(self) -> None:
        run, spec = self.run, self.spec
        deadline = monotonic() + spec.max_duration
        async with asyncio.TaskGroup() as tg:
            tasks = await self.start_vus(tg, self.execution.scale(spec.vus),
                                         lambda vu: self.vu_loop(vu, lambda n: n < spec.iterations))
            await run.wait_until(tasks, deadline)
            await run.finish(tasks)
