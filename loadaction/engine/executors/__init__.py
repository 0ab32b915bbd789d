"""One executor per k6 executor; `executor_for` picks it from the plan."""

from __future__ import annotations

from loadaction.engine.executors.arrival_rate import (
    ConstantArrivalRateExecutor, RampingArrivalRateExecutor,
)
from loadaction.engine.executors.base import Executor, ScenarioRun
from loadaction.engine.executors.constant_vus import ConstantVUsExecutor
from loadaction.engine.executors.per_vu_iterations import PerVUIterationsExecutor
from loadaction.engine.executors.ramping_vus import RampingVUsExecutor
from loadaction.engine.executors.shared_iterations import SharedIterationsExecutor

EXECUTORS: dict[str, type[Executor]] = {
    "constant-vus": ConstantVUsExecutor,
    "ramping-vus": RampingVUsExecutor,
    "per-vu-iterations": PerVUIterationsExecutor,
    "shared-iterations": SharedIterationsExecutor,
    "constant-arrival-rate": ConstantArrivalRateExecutor,
    "ramping-arrival-rate": RampingArrivalRateExecutor,
}


def executor_for(run: ScenarioRun) -> Executor:
    return EXECUTORS[run.scenario.executor.kind](run)


__all__ = ["EXECUTORS", "Executor", "ScenarioRun", "executor_for"]
