"""Open-model executors: iterations start on a schedule whatever the target's
latency. An iteration that finds no free VU (and `maxVUs` already reached) is
dropped and counted in `dropped_iterations`; every started iteration records
how late it started, so coordinated omission shows instead of hiding.

A segment keeps the whole test's schedule and starts only the iterations it
owns, striped over the segments that got some of `maxVUs` (k6), with its
share of `preAllocatedVUs` and `maxVUs`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from time import monotonic

from loadaction.engine.executors.base import START_BATCH, Executor, VUStopped
from loadaction.engine.executors.stages import arrival_offsets, total_duration
from loadaction.engine.vu import VirtualUser
from loadaction.plan.executors import segment_share
from loadaction.plan.model import ConstantArrivalRate, RampingArrivalRate, Stage


class ArrivalRateExecutor(Executor):
    spec: ConstantArrivalRate | RampingArrivalRate

    def offsets(self) -> Iterator[float]:
        raise NotImplementedError

    async def execute(self) -> None:
        run, spec = self.run, self.spec
        share = segment_share(spec, self.execution)
        if not share.runs or share.stripe is None:
            return  # no VU of the test is this segment's: no iteration either
        run.stripe_iterations(share.stripe)
        owned = None if share.stripe.is_full else share.stripe.owns
        max_vus = share.max_vus
        free: list[VirtualUser] = []
        for i in range(share.vus):  # in batches: thousands of VUs take a while
            free.append(run.new_vu())
            if i % START_BATCH == START_BATCH - 1:
                await asyncio.sleep(0)
        in_flight: set[asyncio.Task[None]] = set()
        counts: dict[int, int] = {}  # per-VU iteration numbers
        start = monotonic()
        end = start + self.planned_duration()

        async def one(vu: VirtualUser) -> None:
            run.active_vus += 1
            n = counts.get(vu.id, 0)
            counts[vu.id] = n + 1
            try:
                await run.iterate(vu, n)
            except VUStopped:
                return  # this VU is spent; it does not go back to the pool
            finally:
                run.active_vus -= 1
            free.append(vu)

        async with asyncio.TaskGroup() as tg:
            for index, offset in enumerate(self.offsets()):
                if owned is not None and not owned(index):
                    continue  # another segment's iteration
                due = start + offset
                if due >= end or await run.sleep_until(due):
                    break
                if run.state.heartbeat.stale():
                    await asyncio.sleep(0)  # behind schedule, sleep_until never suspends
                if free:
                    vu = free.pop()
                elif run.vus_max < max_vus:
                    vu = run.new_vu()
                else:
                    run.drop()
                    continue
                run.lateness(monotonic() - due)
                task = tg.create_task(one(vu))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            await run.sleep_until(end)
            await run.finish(list(in_flight))


class ConstantArrivalRateExecutor(ArrivalRateExecutor):
    spec: ConstantArrivalRate

    def planned_duration(self) -> float:
        return self.spec.duration

    def offsets(self) -> Iterator[float]:
        spec = self.spec
        stage = Stage(spec.duration, spec.rate)
        return arrival_offsets(spec.rate, (stage,), spec.time_unit)


class RampingArrivalRateExecutor(ArrivalRateExecutor):
    spec: RampingArrivalRate

    def planned_duration(self) -> float:
        return total_duration(self.spec.stages)

    def offsets(self) -> Iterator[float]:
        spec = self.spec
        return arrival_offsets(spec.start_rate, spec.stages, spec.time_unit)
