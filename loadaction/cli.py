"""Command line: `loadaction run | validate | report`.

Exit codes (k6's 99 for crossed thresholds, so k6 users' scripts keep working):
  0   all budgets held
  99  a budget was violated, or the run aborted on a threshold (abortOnFail)
  2   the plan or the inputs are invalid (nothing was sent)
  3   the run could not be carried out: target unreachable, setup failed,
      cancelled (SIGINT/SIGTERM), or stopped by a safety cap
  1   an unexpected crash (a bug: please report it)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from loadaction.errors import ExitCode, LoadactionError
from loadaction.plan import load_plan
from loadaction.plan.model import Limits, Plan

EPILOG = __doc__.split("\n\n", 1)[1]


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive(kind: type) -> object:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def _duration(text: str) -> float:
    from loadaction.plan.durations import parse_duration
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad input already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitCode.INVALID, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="loadaction", description="Load and chaos testing with k6-style budgets.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def plan_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("plan", help="the plan file (YAML)")
        p.add_argument("--target", help="base URL of the system under test (overrides the plan's)")
        p.add_argument("--profile", help="a profile defined in the plan (smoke, pr, full, ...)")
        p.add_argument("--scenario", action="append", default=[], metavar="NAME",
                       help="run only this scenario (repeatable)")
        p.add_argument("--var", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                       help="set a plan variable (repeatable)")
        p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                       help="also allow requests to this host (repeatable)")
        p.add_argument("--max-rps", type=_positive(float), help="never send more requests per second")
        p.add_argument("--max-requests", type=_positive(int),
                       help="stop the run (exit 3) once this many requests were sent")
        p.add_argument("--max-duration", type=_duration,
                       help="refuse plans scheduled to run longer; stop the run at this time")
        p.add_argument("--allow-live-keys", action="store_true",
                       help="allow live Stripe keys (sk_live_, rk_live_) in secrets and vars")

    run = sub.add_parser("run", help="run a plan", epilog=EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    plan_args(run)
    run.add_argument("--out", type=Path, metavar="DIR", help="write DIR/results.json")
    run.add_argument("--progress-interval", type=_positive(float), default=5.0, metavar="SECONDS",
                     help="seconds between progress lines (default 5)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")

    validate = sub.add_parser("validate", help="check a plan without sending anything")
    plan_args(validate)

    report = sub.add_parser("report", help="render a results.json again")
    report.add_argument("results", type=Path)
    report.add_argument("--format", choices=("text", "json", "md"), default="text")
    report.add_argument("--template", type=Path, metavar="FILE",
                        help="a Jinja2 Markdown template of your own (for --format md)")
    return parser


def _load(args: argparse.Namespace) -> Plan:
    limits = Limits(max_rps=args.max_rps, max_requests=args.max_requests,
                    max_duration=args.max_duration, allow_live_keys=args.allow_live_keys)
    return load_plan(args.plan, target=args.target, profile=args.profile,
                     scenarios=args.scenario, vars=dict(args.var), limits=limits,
                     extra_allowed_hosts=args.allow_host)


def _exit_code(status: str, violations: int) -> ExitCode:
    if status == "aborted" or (status == "complete" and violations):
        return ExitCode.THRESHOLDS_FAILED
    if status != "complete":
        return ExitCode.NOT_CARRIED_OUT
    return ExitCode.OK


async def _run(plan: Plan, args: argparse.Namespace) -> int:
    from loadaction.engine.runner import Run
    from loadaction.report import render
    from loadaction.report.build import build_results
    from loadaction.report.progress import progress_lines
    from loadaction.report.results_io import write_results

    def show(progress: object) -> None:
        for line in progress_lines(progress):  # type: ignore[arg-type]
            print(run.state.masker(line), file=sys.stderr, flush=True)

    run = Run(plan, progress=None if args.quiet else show, progress_interval_s=args.progress_interval)
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if run.control.stop.is_set():
            print(f"loadaction: {name} again: stopping in-flight iterations now", file=sys.stderr)
            run.hard_stop()
        else:
            print(f"loadaction: {name}: stopping gracefully (again to stop at once)", file=sys.stderr)
            run.control.request_stop("cancelled", name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        outcome = await run.execute()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    doc = build_results(outcome)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_results(args.out / "results.json", doc)
    sys.stdout.write(render(doc, "text", color=sys.stdout.isatty()))
    code = _exit_code(outcome.status, len(outcome.violations))
    if outcome.status not in ("complete", "aborted"):
        print(f"loadaction: run {outcome.status}: {outcome.reason}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            from loadaction.report import render
            from loadaction.report.results_io import load_results
            sys.stdout.write(render(load_results(args.results), args.format,
                                    color=args.format == "text" and sys.stdout.isatty(),
                                    template=args.template))
            return ExitCode.OK
        plan = _load(args)
        if args.command == "validate":
            from loadaction.plan.timeline import describe
            print(describe(plan))
            return ExitCode.OK
        return asyncio.run(_run(plan, args))
    except LoadactionError as exc:
        print(f"loadaction: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.NOT_CARRIED_OUT

