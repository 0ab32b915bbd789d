"""What `loadaction validate` prints: the plan as it will run."""

from __future__ import annotations

from typing import Any

from loadaction.plan.data import segment_rows
from loadaction.plan.executors import executor_length, segment_share
from loadaction.plan.hosts import PLACEHOLDER_TARGET
from loadaction.plan.model import (
    AbortFault, ChaosToolkitFault, CommandFault, ConstantArrivalRate, ConstantVUs, DuplicateFault,
    ExecutorSpec, Fault, FaultAction, HttpFault, PerVUIterations, Plan, RampingArrivalRate,
    RampingVUs, ReorderFault, SharedIterations, TamperFault, TimeoutRetryFault, ToxiproxyFault,
)
from loadaction.plan.probes import CommandProbe, PostgresProbe, PrometheusProbe
from loadaction.plan.templates import Static


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


def _segment_shape(spec: ExecutorSpec, plan: Plan) -> str:
    """What this execution segment runs of `spec` (validate with --shard)."""
    execution = plan.execution
    share = segment_share(spec, execution)
    if not share.runs:
        return "nothing (no VU of it is this segment's)"
    match spec:
        case ConstantVUs():
            return f"{share.vus} VUs"
        case RampingVUs():
            stages = ", ".join(f"{execution.scale(int(s.target))} over {s.duration:g}s"
                               for s in spec.stages)
            return f"from {share.vus} VUs: {stages}"
        case PerVUIterations():
            return f"{share.vus} VUs x {spec.iterations} iterations"
        case SharedIterations():
            return f"{share.iterations} iterations shared by {share.vus} VUs"
    assert isinstance(spec, (ConstantArrivalRate, RampingArrivalRate))
    return (f"{share.rate.numerator} in {share.rate.denominator} of the iterations, "
            f"{share.vus}-{share.max_vus} VUs")


def describe(plan: Plan) -> str:
    lines = [f"plan {plan.name} ({plan.file}) is valid",
             f"target: {plan.target}"
             + (" (a placeholder: the target's environment variable is not set)"
                if plan.target == PLACEHOLDER_TARGET else "")
             + (f"  profile: {plan.profile}" if plan.profile else ""),
             "scenarios:"]
    segmented = not plan.execution.is_full
    if segmented:
        lines.insert(-1, f"execution segment: {plan.execution.segment} of sequence "
                         f"{plan.execution.sequence} (this process runs its share)")
    for s in sorted(plan.scenarios, key=lambda s: s.start_time):
        end = s.start_time + executor_length(s.executor)
        lines.append(f"  {s.start_time:>7.1f}s - {end:>7.1f}s  {s.name}  {s.executor.kind}: "
                     f"{_shape(s.executor)}  (flow {s.exec}, gracefulStop {s.graceful_stop:g}s)")
        if segmented:
            lines.append(f"      this segment: {_segment_shape(s.executor, plan)}")
    if segmented:
        for source in plan.data.values():
            if source.mode == "unique":
                lines.append(f"data {source.name} (unique): this segment draws "
                             f"{len(segment_rows(source, plan.execution))} of "
                             f"{len(source.rows)} rows")
    if plan.chaos:
        lines.extend(_chaos(plan))
    if plan.probes:
        lines.extend(_probes(plan))
    lines.append(f"thresholds: {len(plan.thresholds)}")
    for t in plan.thresholds:
        flags = "".join([" abortOnFail" if t.abort_on_fail else "", " optional" if t.optional else ""])
        lines.append(f"  {t.selector}  {t.expr.text}{flags}  ({t.source})")
    return "\n".join(lines)


def _probes(plan: Plan) -> list[str]:
    """Each probe, where it reads (a templated URL or DSN shows as written:
    it is rendered when the load starts) and the metrics it records."""
    lines = [f"probes: {len(plan.probes)}"]
    for probe in plan.probes:
        spec = probe.spec
        if isinstance(spec, PrometheusProbe):
            where = spec.static_url or f"{_written(spec.url)} (rendered at load start)"
        elif isinstance(spec, PostgresProbe):
            where = "the DSN " + _written(spec.dsn)
        else:
            assert isinstance(spec, CommandProbe)
            where = " ".join(_written(arg) for arg in spec.argv)
        when = f", when {_written(probe.when)}" if probe.when is not None else ""
        lines.append(f"  {probe.name}  {probe.kind.value}: {where} every {probe.interval:g}s "
                     f"(timeout {probe.timeout:g}s{when})  ({probe.source})")
        lines.append(f"      metrics: {', '.join(probe.metric_names)}")
    return lines


def _written(value: object) -> str:
    """A compiled plan value as the plan wrote it (a template's own text)."""
    if isinstance(value, Static):
        return str(value.value)
    return str(getattr(value, "text", value))


def _chaos(plan: Plan) -> list[str]:
    """Each fault at the run times it is active (anchored offsets resolved)."""
    starts = {s.name: s.start_time for s in plan.scenarios}

    def begins(fault: Fault) -> float:
        return fault.at + (starts[fault.anchor] if fault.anchor is not None else 0.0)

    lines = [f"chaos: {len(plan.chaos)}"]
    for fault in sorted(plan.chaos, key=begins):
        start = begins(fault)
        anchor = f", {fault.at:g}s after {fault.anchor} starts" if fault.anchor else ""
        lines.append(f"  {start:>7.1f}s - {start + fault.duration:>7.1f}s  {fault.name}  "
                     f"{fault.action.kind}: {_action(fault.action)}  ({fault.source}{anchor})")
        for budget in fault.recovery:
            tags = ",".join(f"{key}:{value}" for key, value in budget.tags)
            selector = budget.metric + (f"{{{tags}}}" if tags else "")
            lines.append(f"      recovery: {selector}  {budget.expr.text} within "
                         f"{budget.within:g}s of the end, stable {budget.stable:g}s  "
                         f"({budget.source})")
    return lines


def _action(action: FaultAction) -> str:
    match action:
        case HttpFault():
            return (f"{action.start.method} {_text(action.start.url)}, "
                    f"stop: {action.stop.method} {_text(action.stop.url)}")
        case CommandFault():
            return f"{_text(action.start)!r}, stop: {_text(action.stop)!r}"
        case ToxiproxyFault():
            attributes = (f" {action.attributes.value}"
                          if isinstance(action.attributes, Static) else "")
            return (f"{action.toxic_type} toxic on proxy {action.proxy} ({action.stream}, "
                    f"toxicity {action.toxicity:g}){attributes} via {_text(action.api)}")
        case ChaosToolkitFault():
            return f"{_activity(action.action)}, rollback: {_activity(action.rollback)}"
        case AbortFault():
            return f"{_names(action.requests)}, probability {action.probability:g}"
        case DuplicateFault():
            when = "at once" if action.delay is None else f"after {action.delay:g}s"
            return (f"{_names(action.requests)}, {action.copies} more {when}, "
                    f"probability {action.probability:g}")
        case ReorderFault():
            return (f"{_names(action.requests)}, shuffled in windows of {action.window} "
                    f"(flushed after {action.max_wait:g}s)")
        case TamperFault():
            expect = ", ".join(str(status) for status in action.expect)
            return (f"{_names(action.requests)}, mode {action.mode} ({action.header}), "
                    f"expect {expect}, probability {action.probability:g}")
        case TimeoutRetryFault():
            return (f"{_names(action.requests)}, mode {action.mode} ({action.header}), "
                    f"timeout {action.timeout * 1000:g}ms, retries {action.retries}")
    raise AssertionError(action)


def _text(value: Any) -> str:
    """A template as written, or a constant, shortened for one line."""
    text = str(value.value if isinstance(value, Static) else getattr(value, "text", value))
    return text if len(text) <= 80 else text[:77] + "..."


def _names(requests: tuple[str, ...]) -> str:
    return "requests " + ", ".join(requests)


def _activity(activity: Any) -> str:
    provider = activity.get("provider", {})
    return f"{activity.get('type')} {activity.get('name')} ({provider.get('type')})"
