"""What `loadaction validate` prints: the plan as it will run."""

from __future__ import annotations

from loadaction.plan.executors import executor_length
from loadaction.plan.model import (
    ConstantArrivalRate, ConstantVUs, ExecutorSpec, PerVUIterations, Plan, RampingArrivalRate,
    RampingVUs, SharedIterations,
)


def _shape(spec: ExecutorSpec) -> str:
    match spec:
        case ConstantVUs():
            return f"{spec.vus} VUs for {spec.duration:g}s"
        case RampingVUs():
            stages = ", ".join(f"{s.target:g} over {s.duration:g}s" for s in spec.stages)
            return f"from {spec.start_vus} VUs: {stages}"
        case PerVUIterations():
            return f"{spec.vus} VUs x {spec.iterations} iterations (max {spec.max_duration:g}s)"
        case SharedIterations():
            return f"{spec.iterations} iterations shared by {spec.vus} VUs (max {spec.max_duration:g}s)"
        case ConstantArrivalRate():
            return (f"{spec.rate:g} iterations per {spec.time_unit:g}s for {spec.duration:g}s, "
                    f"{spec.pre_allocated_vus}-{spec.max_vus} VUs")
        case RampingArrivalRate():
            stages = ", ".join(f"{s.target:g}/{spec.time_unit:g}s over {s.duration:g}s" for s in spec.stages)
            return f"from {spec.start_rate:g}/{spec.time_unit:g}s: {stages}, {spec.pre_allocated_vus}-{spec.max_vus} VUs"
    raise AssertionError(spec)


def describe(plan: Plan) -> str:
    lines = [f"plan {plan.name} ({plan.file}) is valid",
             f"target: {plan.target}" + (f"  profile: {plan.profile}" if plan.profile else ""),
             "scenarios:"]
    for s in sorted(plan.scenarios, key=lambda s: s.start_time):
        end = s.start_time + executor_length(s.executor)
        lines.append(f"  {s.start_time:>7.1f}s - {end:>7.1f}s  {s.name}  {s.executor.kind}: "
                     f"{_shape(s.executor)}  (flow {s.exec}, gracefulStop {s.graceful_stop:g}s)")
    lines.append(f"thresholds: {len(plan.thresholds)}")
    for t in plan.thresholds:
        flags = "".join([" abortOnFail" if t.abort_on_fail else "", " optional" if t.optional else ""])
        lines.append(f"  {t.selector}  {t.expr.text}{flags}  ({t.source})")
    return "\n".join(lines)
