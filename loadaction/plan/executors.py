"""Executor options, with k6's names and defaults.

Options are read into a plain dict first (typed, keyed by the YAML name) so
a profile can scale them before defaults and cross-option rules apply;
that way `maxVUs >= preAllocatedVUs` is checked on the numbers that run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from loadaction.errors import PlanError
from loadaction.plan.fields import (
    expect_duration, expect_int, expect_map, expect_number, expect_seq, check_keys, required,
)
from loadaction.plan.model import (
    ConstantArrivalRate, ConstantVUs, ExecutorSpec, PerVUIterations, RampingArrivalRate,
    RampingVUs, SharedIterations, Stage,
)
from loadaction.plan.segments import Execution
from loadaction.plan.source import Map, Node

EXECUTOR_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "constant-vus": ("vus", "duration"),
    "ramping-vus": ("startVUs", "stages", "gracefulRampDown"),
    "per-vu-iterations": ("vus", "iterations", "maxDuration"),
    "shared-iterations": ("vus", "iterations", "maxDuration"),
    "constant-arrival-rate": ("rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs"),
    "ramping-arrival-rate": ("startRate", "timeUnit", "stages", "preAllocatedVUs", "maxVUs"),
}
REQUIRED_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "constant-vus": ("duration",),
    "ramping-vus": ("stages",),
    "per-vu-iterations": (),
    "shared-iterations": (),
    "constant-arrival-rate": ("rate", "duration", "preAllocatedVUs"),
    "ramping-arrival-rate": ("stages", "preAllocatedVUs"),
}
TIMING_OPTIONS = ("startTime", "gracefulStop")
"""Scenario keys read with the executor options, so profiles can scale them."""


def read_options(node: Map, executor: str, where: str) -> dict[str, Any]:
    """Typed values of the options written in `node` (absent ones stay absent)."""
    options: dict[str, Any] = {}
    for key in (*EXECUTOR_OPTIONS[executor], *TIMING_OPTIONS):
        value = node.get(key)
        if value is not None:
            options[key] = _read(key, value, executor)
    for key in REQUIRED_OPTIONS[executor]:
        required(node, key, where)
    return options


def build_executor(executor: str, options: Mapping[str, Any], node: Map) -> ExecutorSpec:
    """The model executor from (possibly scaled) options, defaults filled in."""
    if executor == "constant-vus":
        return ConstantVUs(duration=options["duration"], vus=options.get("vus", 1))
    if executor == "ramping-vus":
        return RampingVUs(stages=options["stages"], start_vus=options.get("startVUs", 1),
                          graceful_ramp_down=options.get("gracefulRampDown", 30.0))
    if executor in ("per-vu-iterations", "shared-iterations"):
        kind = PerVUIterations if executor == "per-vu-iterations" else SharedIterations
        return kind(vus=options.get("vus", 1), iterations=options.get("iterations", 1),
                    max_duration=options.get("maxDuration", 600.0))
    pre_allocated = options["preAllocatedVUs"]
    max_vus = options.get("maxVUs", pre_allocated)
    if max_vus < pre_allocated:
        raise PlanError(f"maxVUs ({max_vus}) must not be less than preAllocatedVUs "
                        f"({pre_allocated})", node.key_source("maxVUs"))
    time_unit = options.get("timeUnit", 1.0)
    if executor == "constant-arrival-rate":
        return ConstantArrivalRate(rate=options["rate"], duration=options["duration"],
                                   pre_allocated_vus=pre_allocated, max_vus=max_vus,
                                   time_unit=time_unit)
    return RampingArrivalRate(stages=options["stages"], pre_allocated_vus=pre_allocated,
                              max_vus=max_vus, start_rate=options.get("startRate", 0.0),
                              time_unit=time_unit)


def executor_length(spec: ExecutorSpec) -> float:
    """Seconds the executor may run, before the scenario's gracefulStop."""
    if isinstance(spec, (ConstantVUs, ConstantArrivalRate)):
        return spec.duration
    if isinstance(spec, (RampingVUs, RampingArrivalRate)):
        return sum(stage.duration for stage in spec.stages)
    return spec.max_duration


def _read(key: str, node: Node, executor: str) -> Any:
    if key in ("vus", "iterations", "preAllocatedVUs", "maxVUs"):
        return expect_int(node, key, minimum=1)
    if key == "startVUs":
        return expect_int(node, key)
    if key in ("duration", "maxDuration", "timeUnit"):
        return expect_duration(node, key, positive=True)
    if key in ("gracefulRampDown", *TIMING_OPTIONS):
        return expect_duration(node, key)
    if key in ("rate", "startRate"):
        return expect_number(node, key, positive=key == "rate")
    return _stages(node, counts_vus=executor == "ramping-vus")


def _stages(node: Node, *, counts_vus: bool) -> tuple[Stage, ...]:
    """`[{duration: 30s, target: 100}, ...]`; VU targets are whole numbers."""
    stages = []
    for item in expect_seq(node, "stages").items:
        stage = expect_map(item, "stage")
        check_keys(stage, ("duration", "target"), "in stage")
        duration = expect_duration(required(stage, "duration", "in stage"), "duration")
        target_node = required(stage, "target", "in stage")
        target = (expect_int(target_node, "target") if counts_vus
                  else expect_number(target_node, "target"))
        stages.append(Stage(duration, float(target)))
    if not stages:
        raise PlanError("stages: expected at least one stage", node.source)
    return tuple(stages)


@dataclass(frozen=True, slots=True)
class SegmentShare:
    """What one execution segment runs of an executor, k6's way (lib/executor):
    VU counts are the segment's striped share (ScaleInt64); shared iterations
    and arrival-rate iterations are striped again over the segments that got
    VUs (`stripe`), so a segment with no VU gets no iteration."""

    vus: int  # VUs it starts: vus; startVUs (ramping-vus); preAllocatedVUs (arrival rate)
    max_vus: int  # the most it may have: its share of the peak target, or of maxVUs
    iterations: int | None  # iterations it runs, for the iteration executors; None: time-bound
    stripe: Execution | None  # what its iterations are striped by; None: it runs none

    @property
    def runs(self) -> bool:
        """False when the segment got nothing of the scenario (k6 skips it)."""
        return self.stripe is not None and self.max_vus > 0 and self.iterations != 0

    @property
    def rate(self) -> Fraction:
        """Its share of an arrival rate (of every stage target): 0 if it has no VU."""
        return self.stripe.segment.length if self.stripe is not None else Fraction(0)


def segment_share(spec: ExecutorSpec, execution: Execution) -> SegmentShare:
    """The segment's share of `spec`; summed over a sequence's segments the
    VUs, iterations and rates are the whole executor's, exactly."""
    scale = execution.scale
    if isinstance(spec, (ConstantVUs, PerVUIterations)):
        vus = scale(spec.vus)
        iterations = vus * spec.iterations if isinstance(spec, PerVUIterations) else None
        return SegmentShare(vus, vus, iterations, execution)
    if isinstance(spec, RampingVUs):
        peak = max([spec.start_vus, *(int(stage.target) for stage in spec.stages)])
        return SegmentShare(scale(spec.start_vus), scale(peak), None, execution)
    if isinstance(spec, SharedIterations):
        stripe = execution.rescaled(spec.vus)
        iterations = stripe.scale(spec.iterations) if stripe is not None else 0
        vus = min(scale(spec.vus), iterations)
        return SegmentShare(vus, vus, iterations, stripe)
    return SegmentShare(scale(spec.pre_allocated_vus), scale(spec.max_vus), None,
                        execution.rescaled(spec.max_vus))
