"""`shared-iterations`: VUs share a pool of `iterations`; fast VUs take more.

A segment gets its share of the VUs, and of the iterations as striped over
the segments that got VUs (k6: a segment with no VU gets no iteration)."""

from __future__ import annotations

import asyncio
from time import monotonic

from loadaction.engine.executors.base import Executor
from loadaction.plan.executors import segment_share
from loadaction.plan.model import SharedIterations


class SharedIterationsExecutor(Executor):
    spec: SharedIterations

    def planned_duration(self) -> float:
        return self.spec.max_duration

    async def execute(self) -> None:
        run, spec = self.run, self.spec
        share = segment_share(spec, self.execution)
        if not share.runs or share.stripe is None:
            return  # no VU or iteration of the test is this segment's
        run.stripe_iterations(share.stripe)
        remaining = share.iterations or 0

        def take(_: int) -> bool:
            nonlocal remaining
            if remaining <= 0:
                return False
            remaining -= 1
            return True

        deadline = monotonic() + spec.max_duration
        async with asyncio.TaskGroup() as tg:
            tasks = await self.start_vus(tg, share.vus,
                                         lambda vu: self.vu_loop(vu, take))
            await run.wait_until(tasks, deadline)
            await run.finish(tasks)
