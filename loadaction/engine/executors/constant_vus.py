"""`constant-vus`: a fixed number of VUs looping for a fixed time."""

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
            tasks = [tg.create_task(self.vu_loop(run.new_vu(), lambda n: monotonic() < end))
                     for _ in range(spec.vus)]
            await run.wait_until(tasks, end)
            await run.finish(tasks)
