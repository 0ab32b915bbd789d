"""`constant-vus`: a fixed number of VUs looping for a fixed time (this
segment's share of them)."""

from __future__ import annotations

import asyncio
from time import monotonic

from loadaction.engine.executors.base import Executor
from loadaction.plan.model import ConstantVUs


class ConstantVUsExecutor(Executor):
    spec: ConstantVUs

    def planned_duration(self) -> float:
        return self.spec.duration

    async def execute(self) -> None:
        run, spec = self.run, self.spec
        end = monotonic() + spec.duration
        async with asyncio.TaskGroup() as tg:
            tasks = await self.start_vus(tg, self.execution.scale(spec.vus),
                                         lambda vu: self.vu_loop(vu, lambda n: monotonic() < end))
            await run.wait_until(tasks, end)
            await run.finish(tasks)
