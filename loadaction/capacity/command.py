"""`loadaction capacity PLAN --scenario NAME`: the search loop, its flags,
signals, the step table and results.json.

Each step is a run of its own (engine/runner.py) of a derived plan
(capacity/step.py); the search (capacity/search.py) picks the rates. Setup
runs with the first step and its vars are handed to every later one;
teardown runs once, after the last step, however the search ended.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadaction.argtypes import add_plan_arguments, duration, positive
from loadaction.capacity.record import capacity_section, step_record
from loadaction.capacity.search import (
    FLOOR_RATE,
    LimitedBy,
    Search,
    SearchConfig,
    SearchResult,
    StepVerdict,
)
from loadaction.capacity.step import StepConfig, StepResult, StepWindow, judge_step, step_plan, teardown_plan
from loadaction.engine.runner import Run, RunOutcome
from loadaction.engine.status import RunStatus
from loadaction.errors import ExitCode, PlanError
from loadaction.github.cli import add_run_arguments, github_step, mask_token
from loadaction.masking import mask_url_credentials, url_passwords
from loadaction.plan import load_plan
from loadaction.plan.model import ConstantArrivalRate, Limits, Plan, RampingArrivalRate, Scenario
from loadaction.engine.transports import transport_for
from loadaction.session import add_http_client_argument
from loadaction.report.capacity import describe, step_header, step_line
from loadaction.results.build import build_results
from loadaction.results.io import write_results
from loadaction.session import AfterRun
from loadaction.writable import check_output_dir

DEFAULT_RATE = 10.0
FIRST_ITERATION_S = 0.1
"""The iteration time VUs are pre-allocated for before any step measured one."""


def result_line(section: Mapping[str, Any], min_rate: float | None) -> str:
    """The closing line: the capacity, its bracket and the --min-rate gate."""
    line = f"capacity of {section['scenario']}: {describe(section)}"
    if min_rate is not None:
        rate = section["rate"]
        held = rate is not None and rate >= min_rate
        line += f"\n--min-rate {min_rate:g}/s: {'held' if held else 'NOT held'}"
    return line


def share(text: str) -> float:
    """A share: `5%` or `0.05`, in [0, 1)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share such as 5% or 0.05, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0% up to 100%, got {text!r}")
    return value


def add_capacity_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "capacity", help="find the highest arrival rate a scenario sustains within its budgets",
        description="Drive one scenario as a constant arrival rate in steps: double the rate "
                    "while steps pass, then bisect between the highest pass and the lowest "
                    "fail. A step passes when every budget that applies to the scenario holds, "
                    "errors stay under their limit and no iterations are dropped; a step the "
                    "generator could not drive is unknown, never a pass. Exit 0 when a "
                    "capacity was found, 99 below --min-rate or when nothing passed, 2 bad "
                    "input, 3 cancelled or not carried out.")
    add_plan_arguments(p, profile_help="a profile defined in the plan")
    p.add_argument("--scenario", required=True, metavar="NAME", help="the scenario to drive")
    p.add_argument("--start-rate", type=positive(float), metavar="PER_S",
                   help="the first step's rate (default: the scenario's own rate, else 10/s)")
    p.add_argument("--max-rate", type=positive(float), default=10_000.0, metavar="PER_S",
                   help="never try a higher rate (default 10000/s)")
    p.add_argument("--precision", type=share, default=0.05, metavar="SHARE",
                   help="stop once (fail - pass) / pass is at most this (default 5%%)")
    p.add_argument("--max-steps", type=positive(int), default=16, metavar="N",
                   help="at most this many steps (default 16)")
    p.add_argument("--step-duration", type=duration, default=30.0, metavar="DURATION",
                   help="how long each step runs (default 30s)")
    p.add_argument("--warmup", type=duration, metavar="DURATION",
                   help="the first part of each step, not judged (default 20%% of the step)")
    p.add_argument("--max-vus", type=positive(int), default=1000, metavar="N",
                   help="VUs a step may start at most (default 1000)")
    p.add_argument("--max-error-rate", type=share, default=0.01, metavar="SHARE",
                   help="http_req_failed limit when no budget names it (default 1%%)")
    p.add_argument("--max-lateness", type=positive(float), default=100.0, metavar="MS",
                   help="iteration start lateness p(95) above this makes a step unknown "
                        "(default 100 ms)")
    p.add_argument("--min-rate", type=positive(float), metavar="PER_S",
                   help="exit 99 when the capacity found is below this")
    p.add_argument("--max-requests", type=positive(int),
                   help="requests the whole search may send at most")
    p.add_argument("--max-duration", type=duration,
                   help="how long the whole search may take at most (no step starts that "
                        "would end later)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write DIR/results.json")
    add_http_client_argument(p)
    add_run_arguments(p)
    return p


def own_rate(scenario: Scenario) -> float | None:
    """The scenario's own arrival rate per second (a ramp's peak), if it has one."""
    ex = scenario.executor
    if isinstance(ex, ConstantArrivalRate):
        return ex.rate / ex.time_unit
    if isinstance(ex, RampingArrivalRate):
        peak = max([ex.start_rate, *(s.target for s in ex.stages)])
        return peak / ex.time_unit if peak > 0 else None
    return None


@dataclass(frozen=True)
class Options:
    scenario: str
    search: SearchConfig
    step: StepConfig
    limits: Limits  # the plan's caps for the whole search
    min_rate: float | None
    out: Path | None
    http_client: str | None = None  # --http-client: each step's transport


def _options(args: argparse.Namespace, plan: Plan) -> Options:
    scenario = plan.scenarios[0]
    step_s = args.step_duration
    warmup = args.warmup if args.warmup is not None else 0.2 * step_s
    if warmup >= step_s:
        raise PlanError(f"--warmup {warmup:g}s must be shorter than --step-duration {step_s:g}s")
    if args.max_duration is not None and args.max_duration < step_s:
        raise PlanError(f"--max-duration {args.max_duration:g}s leaves no room for one "
                        f"{step_s:g}s step")
    start = args.start_rate or own_rate(scenario) or DEFAULT_RATE
    if start > args.max_rate:
        raise PlanError(f"--start-rate {start:g} is above --max-rate {args.max_rate:g}")
    return Options(
        scenario=scenario.name,
        search=SearchConfig(start_rate=start, max_rate=args.max_rate, precision=args.precision,
                            max_steps=args.max_steps,
                            # a judged window needs one iteration at least
                            floor_rate=max(FLOOR_RATE, 1 / (step_s - warmup))),
        step=StepConfig(duration_s=step_s, warmup_s=warmup, max_vus=args.max_vus,
                        max_error_rate=args.max_error_rate, max_lateness_ms=args.max_lateness),
        limits=Limits(max_rps=args.max_rps, max_requests=args.max_requests,
                      max_duration=args.max_duration, allow_live_keys=args.allow_live_keys),
        min_rate=args.min_rate, out=args.out, http_client=args.http_client)


def run_capacity(args: argparse.Namespace) -> int:
    """With --github, the step gets the summary, outputs and sticky comment of
    the chosen step's document, Capacity section included."""
    if args.github:
        mask_token(os.environ)
    if args.baseline:
        raise PlanError("--baseline: a capacity search is not compared with baselines")
    if args.out is not None:
        check_output_dir(args.out, "--out", contents=("results.json", "report.md"))
    step = github_step(args, os.environ, [])
    # the loader's max-duration check is per plan; here it bounds the whole search
    plan = load_plan(args.plan, target=args.target, profile=args.profile, scenarios=[args.scenario],
                     vars=dict(args.var), extra_allowed_hosts=args.allow_host,
                     limits=Limits(max_rps=args.max_rps, allow_live_keys=args.allow_live_keys))
    options = _options(args, plan)
    if step is not None:
        step.mask([*plan.secrets.values(), *url_passwords(plan.target)])
    for warning in plan.warnings:
        print(mask_url_credentials(f"warning: {warning}"), file=sys.stderr)
    if plan.chaos:
        print("warning: capacity steps run without the plan's chaos faults", file=sys.stderr)
    search = CapacitySearch(plan, options, after=step.after_run if step is not None else None)
    code = asyncio.run(search.execute())
    if code == ExitCode.THRESHOLDS_FAILED and not args.fail_on_violation:
        return ExitCode.OK
    return code


class CapacitySearch:
    """The loop: one run per step; SIGINT/SIGTERM stops the current step and
    ends the search with the steps so far (a second one stops at once)."""

    def __init__(self, plan: Plan, options: Options, *, after: AfterRun | None = None,
                 print_line: Callable[[str], None] | None = None) -> None:
        """`after`: called with the document written and the exit code (the GitHub step)."""
        self.plan = plan
        self._after = after
        self.options = options
        self.search = Search(options.search)
        self.steps: list[StepResult] = []
        self.cancelled: str | None = None
        self.failure: str | None = None
        self._run: Run | None = None
        self._failed: RunOutcome | None = None  # the step that could not be carried out
        self._print = print_line or (lambda line: print(line, flush=True))

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        run = self._run
        if self.cancelled is not None and run is not None:
            print(f"loadaction: {name} again: stopping in-flight iterations now", file=sys.stderr)
            run.hard_stop()
            return
        self.cancelled = name
        print(f"loadaction: {name}: stopping the capacity search after this step's in-flight "
              f"iterations (again to stop at once)", file=sys.stderr)
        if run is not None:
            run.control.request_stop(RunStatus.CANCELLED, name)

    async def execute(self) -> ExitCode:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            setup_vars = await self._steps()
            if self.plan.teardown is not None and setup_vars is not None:
                teardown = Run(teardown_plan(self.plan, replace(self.options.limits,
                                                                max_requests=None,
                                                                max_duration=None)),
                               vars=setup_vars)
                self._run = teardown
                outcome = await teardown.execute()
                for notice in outcome.notices:
                    print(teardown.masker(f"loadaction: {notice}"), file=sys.stderr)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        doc, code = self._finish()
        if self._after is not None and doc is not None:
            await self._after(doc, code)
        return code

    async def _steps(self) -> dict[str, Any] | None:
        options, limits = self.options, self.options.limits
        scenario = self.plan.scenarios[0]
        began = time.monotonic()
        sent = 0
        setup_vars: dict[str, Any] | None = None
        iteration_s: float | None = None  # for sizing VUs: the lowest step median so far
        fastest_s: float | None = None  # for the --max-vus check: the fastest iteration so far
        self._print(step_header())
        while self.cancelled is None and (rate := self.search.next_rate()) is not None:
            max_duration = None
            if limits.max_duration is not None:
                left = limits.max_duration - (time.monotonic() - began)
                if left < options.step.duration_s:
                    self.search.stop(LimitedBy.CAP)
                    break
                max_duration = left
            if limits.max_requests is not None and sent >= limits.max_requests:
                self.search.stop(LimitedBy.CAP)
                break
            step_limits = replace(limits, max_duration=max_duration, max_requests=(
                None if limits.max_requests is None else limits.max_requests - sent))
            plan = step_plan(self.plan, scenario, rate, options.step,
                             iteration_s=iteration_s or FIRST_ITERATION_S, limits=step_limits,
                             setup=setup_vars is None)
            print(f"loadaction: step {len(self.steps) + 1}: {rate:g}/s for "
                  f"{options.step.duration_s:g}s", file=sys.stderr, flush=True)
            window = StepWindow(options.step.warmup_s, scenario.name)
            run = self._run = Run(plan, plugins=[window], vars=setup_vars,
                                  transport=transport_for(plan, options.http_client))
            outcome = await run.execute()
            sent += run.state.guard.sent
            if outcome.status in (RunStatus.FAILED, RunStatus.CRASHED):
                self.failure = run.masker(outcome.reason or str(outcome.status))
                self._failed = outcome
                if setup_vars is None:
                    setup_vars = run.setup_vars if run.setup_done else None
                break
            if setup_vars is None:
                setup_vars = run.setup_vars
            result = judge_step(outcome, rate, options.step, baseline_iteration_s=fastest_s)
            self.steps.append(result)
            self._print(run.masker(step_line(len(self.steps), step_record(result))))
            if result.iteration_s is not None:
                iteration_s = min(iteration_s or result.iteration_s, result.iteration_s)
            if result.fastest_iteration_s is not None:
                fastest_s = min(fastest_s or result.fastest_iteration_s,
                                result.fastest_iteration_s)
            if self.cancelled is not None:
                break
            self.search.record(rate, result.verdict, cap=result.limited_by is LimitedBy.CAP)
        return setup_vars

    def _finish(self) -> tuple[dict[str, Any] | None, ExitCode]:
        result = self.search.result()
        status = ("cancelled" if self.cancelled else "failed" if self.failure else "complete")
        section = capacity_section(result, self.steps, scenario=self.options.scenario, status=status,
                                   unknown_rate=self.search.unknown)
        passed = [s for s in self.steps if s.verdict is StepVerdict.PASS]
        chosen = max(passed, key=lambda s: s.rate) if passed else (
            self.steps[-1] if self.steps else None)
        doc = None
        outcome = chosen.outcome if chosen is not None else self._failed
        if outcome is not None:
            doc = build_results(outcome, capacity=section)
            if self.options.out is not None:
                write_results(self.options.out / "results.json", doc)
        self._print(result_line(section, self.options.min_rate))
        return doc, self._code(result)

    def _code(self, result: SearchResult) -> ExitCode:
        if self.failure is not None:
            print(mask_url_credentials(f"loadaction: capacity search could not go on: "
                                       f"{self.failure}"), file=sys.stderr)
            return ExitCode.NOT_CARRIED_OUT
        if self.cancelled is not None:
            return ExitCode.NOT_CARRIED_OUT
        if result.rate is None:
            if result.limited_by in (LimitedBy.GENERATOR, LimitedBy.CAP):
                return ExitCode.NOT_CARRIED_OUT
            return ExitCode.THRESHOLDS_FAILED
        if self.options.min_rate is not None and result.rate < self.options.min_rate:
            return ExitCode.THRESHOLDS_FAILED
        return ExitCode.OK
