"""`shared-iterations`: VUs share a pool of `iterations`; fast VUs take more."""

from __future__ import annotations

import asyncio
from time import monotonic

from loadaction.engine.executors.base import Executor
from loadaction.plan.model import SharedIterations


class SharedIterationsExecutor(Executor):
    spec: SharedIterations

    def planned_duration(self) -> float:
        return self.spec.max_duration

    async def execute(self) -> None:
        run, spec = self.run, self.spec
        remaining = spec.iterations

        def take(_: int) -> bool:
            nonlocal remaining
            if remaining <= 0:
                return False
            remaining -= 1
            return True

        deadline = monotonic() + spec.max_duration
        async with asyncio.TaskGroup() as tg:
            tasks = await self.start_vus(tg, min(spec.vus, spec.iterations),
                                         lambda vu: self.vu_loop(vu, take))
            await run.wait_until(tasks, deadline)
            await run.finish(tasks)
