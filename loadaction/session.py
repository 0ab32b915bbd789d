"""The composition root of a run: wires the plan, the engine, its plugins
(chaos) and the results, and runs it the way a terminal user expects: live
progress, signals handled (first one graceful, second one at once), results
written, the summary printed, and the exit code decided. `run` and `demo`
both end here; `after` lets a caller act on the results document (the GitHub
step) without this module knowing what it does."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadaction.argtypes import default_workers, start_at_problem
from loadaction.chaos.plugin import ChaosPlugin, ChaosReport
from loadaction.engine.hooks import RunPlugin
from loadaction.engine.runner import Progress, Run
from loadaction.engine.start_at import StartAt
from loadaction.engine.status import RunStatus
from loadaction.engine.transport import Transport
from loadaction.engine.transports import DEFAULT_HTTP_CLIENT, transport_for
from loadaction.errors import ExitCode, PlanError
from loadaction.metrics.registry import CHAOS_METRICS
from loadaction.masking import mask_url_credentials
from loadaction.plan.model import HTTP_CLIENTS, Plan, PlanWarning
from loadaction.progress import progress_lines
from loadaction.probes.plugin import ProbesPlugin
from loadaction.report import render
from loadaction.results.build import build_results
from loadaction.results.io import write_results
from loadaction.workers.launch import LoadArgs, resolve_workers
from loadaction.workers.pool import WorkerPool

AfterRun = Callable[[dict[str, Any], ExitCode], Awaitable[None]]



def add_http_client_argument(parser: argparse.ArgumentParser) -> None:
    """`--http-client`, for every command that sends load (run, demo, capacity)."""
    parser.add_argument("--http-client", choices=HTTP_CLIENTS, default=None,
                        help=f"the HTTP/1.1 client; overrides the plan's defaults.httpClient "
                             f"(default {DEFAULT_HTTP_CLIENT}: asyncio + llhttp; aiohttp: "
                             f"aiohttp's client; with HTTP(S)_PROXY set, aiohttp is used)")


def exit_code(status: RunStatus, violations: int, rollback_failures: int = 0) -> ExitCode:
    """A fault left in place outranks a budget: staging is broken until someone acts."""
    if status is RunStatus.CRASHED:
        return ExitCode.CRASH
    if rollback_failures:
        return ExitCode.NOT_CARRIED_OUT
    if status is RunStatus.ABORTED or (status is RunStatus.COMPLETE and violations):
        return ExitCode.THRESHOLDS_FAILED
    if status is not RunStatus.COMPLETE:
        return ExitCode.NOT_CARRIED_OUT
    return ExitCode.OK


def plugins_for(plan: Plan, seed: int | None = None,
                workers: WorkerPool | None = None) -> list[RunPlugin]:
    """The plugins a plan asks for: chaos when it has faults, or budgets on
    chaos metrics (a --scenario selection can leave a chaos plan with no
    faults; its budgets then end as `no data`, as the load-time warning says),
    probes when it has probes. With `workers`, the chaos timeline tells them
    of every server-side fault's window."""
    chaos = plan.chaos or any(t.metric in CHAOS_METRICS for t in plan.thresholds)
    on_window = None if workers is None else workers.fault_window
    plugins: list[RunPlugin] = [ChaosPlugin(plan.chaos, seed=seed, on_window=on_window)
                                ] if chaos else []
    if plan.probes:
        plugins.append(ProbesPlugin(plan))
    return plugins


def build_run(plan: Plan, *, transport: Transport | None = None, seed: int | None = None,
              progress: Callable[[Progress], None] | None = None,
              progress_interval_s: float = 5.0, http_client: str | None = None,
              start_at: StartAt | None = None, workers: WorkerPool | None = None) -> Run:
    """The engine, wired with the plan's plugins and the chosen transport;
    with `workers`, the load runs in them (this Run: setup, plugins, teardown)."""
    if transport is None:
        transport = transport_for(plan, http_client)
    return Run(plan, transport=transport, plugins=plugins_for(plan, seed, workers),
               progress=progress,
               progress_interval_s=progress_interval_s, seed=seed, start_at=start_at,
               load=workers)


def start_at_from_args(args: argparse.Namespace, now: datetime | None = None) -> StartAt | None:
    """--start-at and its tolerance; a time that cannot be waited for is a
    PlanError (exit 2) before the plan is even read."""
    at = getattr(args, "start_at", None)
    if at is None:
        return None
    tolerance = args.start_at_tolerance
    if (problem := start_at_problem(at, tolerance, now or datetime.now(UTC))) is not None:
        raise PlanError(f"--start-at {problem}")
    return StartAt(at, tolerance)


def print_warnings(warnings: Iterable[PlanWarning]) -> None:
    """One `warning: file:line: message` line each, on stderr."""
    for warning in warnings:
        print(mask_url_credentials(f"warning: {warning}"), file=sys.stderr)


def failed_regressions(doc: Mapping[str, Any]) -> int:
    return sum(1 for r in doc.get("regressions", ()) if r["failed"])


async def run_and_report(plan: Plan, *, out: Path | None, quiet: bool = False,
                         progress_interval_s: float = 5.0, after: AfterRun | None = None,
                         baselines: Sequence[Mapping[str, Any]] = (),
                         http_client: str | None = None,
                         start_at: StartAt | None = None, workers: int | str | None = None,
                         load_args: LoadArgs | None = None) -> ExitCode:
    """`baselines`: earlier runs' results documents; the plan's regression
    budgets are judged against them and gate the run like thresholds.
    `http_client`: the --http-client flag (see engine.transports.transport_for).
    `start_at`: --start-at (the load waits for it after setup). `workers`:
    --workers (N or auto; None: LOADACTION_WORKERS, else auto); above 1 the
    load runs in that many processes, each loading the plan again from
    `load_args`. A caller without `load_args` runs the load in this process."""
    if load_args is None:
        if workers not in (None, 1):
            raise ValueError("workers need the plan's load arguments")
        workers = 1
    else:
        workers = resolve_workers(plan, default_workers(os.environ) if workers is None else workers)
    print_warnings(plan.warnings)  # before anything is sent

    def show(progress: Progress) -> None:
        for line in progress_lines(progress):
            print(run.masker(line), file=sys.stderr, flush=True)

    pool = None
    if load_args is not None and workers > 1:
        pool = WorkerPool(workers, load_args, http_client=http_client,
                          within=plan.execution,
                          announce=lambda line: print(line, file=sys.stderr, flush=True))
    run = build_run(plan, progress=None if quiet else show, progress_interval_s=progress_interval_s,
                    http_client=http_client, start_at=start_at, workers=pool)
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if run.control.stop.is_set():
            print(f"loadaction: {name} again: stopping in-flight iterations now", file=sys.stderr)
            run.hard_stop()
        else:
            print(f"loadaction: {name}: stopping gracefully (again to stop at once)", file=sys.stderr)
            run.control.request_stop(RunStatus.CANCELLED, name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    if start_at is not None:  # once signals are heard: a SIGINT from here on is a clean stop
        print(f"loadaction: after setup, the load waits for {start_at.at.isoformat()} "
              f"(--start-at)", file=sys.stderr, flush=True)
    try:
        outcome = await run.execute()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    doc = build_results(outcome, baselines)
    if out is not None:
        write_results(out / "results.json", doc)
    sys.stdout.write(render(doc, "text", color=sys.stdout.isatty()))
    if outcome.crash is not None:
        trace = "".join(traceback.format_exception(outcome.crash))
        print(run.masker(trace), file=sys.stderr, end="")
    if outcome.status not in (RunStatus.COMPLETE, RunStatus.ABORTED):
        print(f"loadaction: run {outcome.status}: {run.masker(outcome.reason or '')}",
              file=sys.stderr)
    chaos = outcome.contributions.get("chaos")
    rollback_failures = chaos.rollback_failures if isinstance(chaos, ChaosReport) else []
    failed_recoveries = chaos.failed_recoveries if isinstance(chaos, ChaosReport) else 0
    for record in rollback_failures:
        print(run.masker(f"loadaction: ERROR: fault '{record.fault.name}' ({record.fault.source}) "
                         f"was NOT rolled back: {record.rollback_error}; staging may still be "
                         f"broken"), file=sys.stderr)
    code = exit_code(outcome.status,
                     len(outcome.violations) + failed_recoveries + failed_regressions(doc),
                     len(rollback_failures))
    if after is not None:
        await after(doc, code)
    return code
