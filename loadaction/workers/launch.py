"""What a worker process needs to load the same plan as its parent: the
plan-loading arguments, as JSON. A Plan holds compiled templates and cannot
cross a process boundary; its inputs can, and loading is deterministic, so
each worker rebuilds the very plan the parent validated, with its own
segment."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from loadaction.errors import PlanError
from loadaction.plan import load_plan
from loadaction.plan.executors import segment_share
from loadaction.plan.model import Limits, Plan
from loadaction.plan.overrides import QuickOverrides
from loadaction.plan.segments import (
    FULL_TUPLE, Execution, ExecutionTuple, NestedExecution, parse_segment, parse_sequence, shard,
)


@dataclass(frozen=True)
class LoadArgs:
    """load_plan's keyword arguments (less `execution` and `placeholders`)."""

    path: str
    target: str | None = None
    profile: str | None = None
    scenarios: tuple[str, ...] = ()
    vars: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] | None = None  # None: the process environment
    limits: Limits = Limits()
    extra_allowed_hosts: tuple[str, ...] = ()
    overrides: QuickOverrides = QuickOverrides()

    def load(self, execution: Execution | None = None) -> Plan:
        kwargs: dict[str, Any] = {} if execution is None else {"execution": execution}
        return load_plan(self.path, target=self.target, profile=self.profile,
                         scenarios=self.scenarios, vars=dict(self.vars), env=self.env,
                         limits=self.limits, extra_allowed_hosts=self.extra_allowed_hosts,
                         overrides=self.overrides, **kwargs)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(Path(self.path).resolve()),
                "vars": dict(self.vars), "env": None if self.env is None else dict(self.env)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadArgs:
        o = data["overrides"]
        return cls(path=data["path"], target=data["target"], profile=data["profile"],
                   scenarios=tuple(data["scenarios"]), vars=dict(data["vars"]), env=data["env"],
                   limits=Limits(**data["limits"]),
                   extra_allowed_hosts=tuple(data["extra_allowed_hosts"]),
                   overrides=QuickOverrides(o["vus"], o["duration"], tuple(o["stages"]),
                                            o["iterations"]))


CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def available_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The CPUs this process may use: its affinity where the system has one
    (Linux; else the machine's count), and no more than its cgroup's CPU
    limit allows. A container started with --cpus 2, or a pod with
    limits.cpu 2, sees every CPU of its host in its affinity; one worker per
    host CPU would crowd two CPUs' worth of time."""
    affinity = getattr(os, "sched_getaffinity", None)
    count = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    quota = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    return max(1, min(count, quota)) if quota is not None else count


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """The CPUs this process's cgroup may use, rounded up (quota / period,
    cgroup v2's cpu.max or v1's cpu.cfs_quota_us); None without a limit or
    a readable cgroup."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.lstrip("/")
        if controllers == "":  # v2: the unified hierarchy; the tightest limit up to the root
            directory = root / relative
            limits = [_v2_limit(d / "cpu.max") for d in (directory, *directory.parents)
                      if d == root or root in d.parents]
            if found := [limit for limit in limits if limit is not None]:
                return min(found)
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's hierarchy
            for mount in (controllers, "cpu", "cpu,cpuacct"):
                for directory in (root / mount / relative, root / mount):
                    limit = _v1_limit(directory)
                    if limit is not None:
                        return limit
    return _v2_limit(root / "cpu.max")


def _v2_limit(path: Path) -> int | None:
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_limit(directory: Path) -> int | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else max(1, math.ceil(quota / period))
    except (OSError, ValueError, ZeroDivisionError):
        return None


def resolve_workers(plan: Plan, requested: int | str) -> int:
    """How many processes run the load. `auto` is one per usable CPU (a
    shard's too: its workers split the shard), but never a worker with
    nothing to run (a plan of 3 VUs runs in at most 3), nor more than
    --max-requests can give a request each; an explicit N that cannot work
    is refused (check_workers)."""
    if requested != "auto":
        check_workers(plan, int(requested))
        return int(requested)
    count = available_cores()
    if plan.limits.max_requests is not None:
        count = min(count, plan.limits.max_requests)
    while count > 1 and not all(_runs_something(plan, segment_tuple(i, count, plan.execution))
                                for i in range(count)):
        count -= 1
    return count


def _runs_something(plan: Plan, execution: Execution) -> bool:
    return any(segment_share(s.executor, execution).runs for s in plan.scenarios)


def segment_tuple(index: int, count: int, within: ExecutionTuple = FULL_TUPLE) -> Execution:
    """Worker `index` (from 0) of `count`: segment index/count:(index+1)/count
    of the equal sequence 0,1/count,...,1, of the parent's own share `within`
    (its --shard or --execution-segment): nested, so the workers' shares sum
    exactly to the shard's."""
    inner = ExecutionTuple(*shard(index + 1, count))
    return inner if within.is_full else NestedExecution(within, inner)


def within_to_json(execution: Execution) -> list[str] | None:
    """The parent's share (its plan's `execution`) for the workers' spec:
    [segment, sequence], None for the whole test."""
    if not isinstance(execution, ExecutionTuple):
        raise TypeError(f"workers split a process's own segment, not {execution}")
    if execution.is_full:
        return None
    return [str(execution.segment), str(execution.full_sequence)]


def within_from_json(data: Sequence[str] | None) -> ExecutionTuple:
    """within_to_json's inverse (the canonical forms parse back exactly)."""
    if data is None:
        return FULL_TUPLE
    segment, sequence = data
    return ExecutionTuple(parse_segment(segment), parse_sequence(sequence))


def worker_plan(plan: Plan) -> Plan:
    """A worker's plan: its load only. Thresholds are judged, and setup,
    teardown, fault actions and probes run, once, in the parent (a worker
    plays the client-side faults and follows the parent's fault windows:
    chaos/plugin.py)."""
    return replace(plan, thresholds=(), setup=None, teardown=None, chaos=(), probes=())


def split_limits(plan: Plan, index: int, count: int,
                 within: ExecutionTuple = FULL_TUPLE) -> Limits:
    """Worker `index`'s caps. The run's caps hold for the whole run (in a
    shard, for that shard process): each worker gets a part of --max-rps
    and --max-requests in proportion to its part of the VUs, so a worker
    with two of three VUs may send two thirds (an equal split would throttle
    it while the other could not use its half); the parts of the requests
    sum to the cap. max-duration is the same for every worker and the parent."""
    limits = plan.limits
    weights = worker_weights(plan, count, within)
    max_requests = (None if limits.max_requests is None
                    else _apportion(limits.max_requests, weights)[index])
    max_rps = None if limits.max_rps is None else limits.max_rps * float(weights[index])
    return replace(limits, max_requests=max_requests, max_rps=max_rps)


def worker_weights(plan: Plan, count: int, within: ExecutionTuple = FULL_TUPLE
                   ) -> list[Fraction]:
    """Each worker's part of the load: its VUs (at their most, summed over
    the scenarios) over all the workers'; equal parts for a plan of no VUs."""
    vus = [sum(segment_share(s.executor, segment_tuple(i, count, within)).max_vus
               for s in plan.scenarios) for i in range(count)]
    total = sum(vus)
    return [Fraction(v, total) if total else Fraction(1, count) for v in vus]


def _apportion(total: int, weights: Sequence[Fraction]) -> list[int]:
    """`total` in whole parts by `weights` (largest remainder, ties to the
    first), at least 1 for every worker with a weight when there are enough
    (one of 0 would be capped by its first request): the parts sum to
    `total` exactly."""
    floor = [1 if w and total >= sum(1 for x in weights if x) else 0 for w in weights]
    rest = total - sum(floor)
    exact = [rest * w for w in weights]
    parts = [int(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[:rest - sum(parts)]:
        parts[i] += 1
    return [f + p for f, p in zip(floor, parts)]


def check_workers(plan: Plan, count: int) -> None:
    """What a run on several workers cannot do, refused before anything is
    sent (PlanError, exit 2)."""
    if count < 2:
        return
    limit = plan.limits.max_requests
    if limit is not None and limit < count:
        raise PlanError(f"--max-requests {limit} is below --workers {count}: every worker "
                        f"needs a share of it")

