"""`ramping-vus`: VU count follows the stages; VUs above the target finish their
iteration within `gracefulRampDown` before leaving, as in k6. A segment runs its
striped share of the VU count at every moment, so the segments of a sequence
together follow the whole curve."""

from __future__ import annotations

import asyncio
import math
from time import monotonic

from loadaction.engine.executors.base import START_BATCH, Executor
from loadaction.engine.executors.stages import total_duration, value_at
from loadaction.plan.executors import segment_share
from loadaction.plan.model import RampingVUs

TICK_S = 0.05


class RampingVUsExecutor(Executor):
    spec: RampingVUs

    def planned_duration(self) -> float:
        return total_duration(self.spec.stages)

    async def execute(self) -> None:
        run, spec = self.run, self.spec
        if not segment_share(spec, self.execution).runs:
            return  # no VU of the curve is this segment's: k6 skips the scenario
        start = monotonic()
        total = total_duration(spec.stages)
        scale = self.execution.scale
        self.target_now = scale(spec.start_vus)
        slots: list[asyncio.Task[None] | None] = []
        vus = []
        released_at: dict[int, float] = {}  # slot -> when it was asked to leave

        async with asyncio.TaskGroup() as tg:
            while not run.stopping.is_set():
                t = monotonic() - start
                if t >= total:
                    break
                target = scale(math.floor(value_at(spec.start_vus, spec.stages, t) + 1e-9))
                self.target_now = target
                for i in range(target):
                    if i >= len(slots):
                        slots.append(None)
                        vus.append(run.new_vu())
                        if len(slots) % START_BATCH == 0:
                            await asyncio.sleep(0)  # a steep ramp starts its VUs in batches
                    released_at.pop(i, None)
                    task = slots[i]
                    if task is None or task.done():
                        slots[i] = tg.create_task(
                            self.vu_loop(vus[i], lambda n, i=i: i < self.target_now))
                now = monotonic()
                for i in range(target, len(slots)):
                    task = slots[i]
                    if task is None or task.done():
                        continue
                    since = released_at.setdefault(i, now)
                    if now - since > spec.graceful_ramp_down:
                        task.cancel()  # its iteration overran gracefulRampDown: interrupted
                await run.sleep_until(monotonic() + TICK_S)
            await run.finish([s for s in slots if s is not None])
