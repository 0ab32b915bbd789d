"""Command line: `loadaction run | validate | capacity | merge | report | demo | demo-target | comment`.

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
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from loadaction.argtypes import (
    add_plan_arguments, add_segment_arguments, add_start_at_arguments, add_workers_argument,
    duration, execution_from_args, positive,
)
from loadaction.capacity.command import add_capacity_parser, run_capacity
from loadaction.demo.cli import add_demo_target_parser, run_demo_target
from loadaction.demo.command import add_demo_parser, run_demo
from loadaction.errors import ExitCode, LoadactionError, PlanError
from loadaction.github.cli import (
    add_comment_parser,
    add_run_arguments,
    error_line,
    github_step,
    load_baseline,
    mask_token,
    run_comment,
)
from loadaction.masking import mask_url_credentials, url_passwords
from loadaction.merge_command import add_merge_parser, run_merge
from loadaction.plan import load_plan
from loadaction.plan.model import Limits, Plan
from loadaction.plan.overrides import add_override_arguments, overrides_from_args
from loadaction.session import (
    add_http_client_argument,
    print_warnings,
    run_and_report,
    start_at_from_args,
)
from loadaction.workers.launch import LoadArgs
from loadaction.writable import check_output_dir

EPILOG = __doc__.split("\n\n", 1)[1]


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad input already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(ExitCode.INVALID, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="loadaction", description="Load and chaos testing with k6-style budgets.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def plan_args(p: argparse.ArgumentParser) -> None:
        add_plan_arguments(p, profile_help="a profile defined in the plan (smoke, pr, full, ...)")
        p.add_argument("--scenario", action="append", default=[], metavar="NAME",
                       help="run only this scenario (repeatable)")
        p.add_argument("--max-requests", type=positive(int),
                       help="stop the run (exit 3) once this many requests were sent")
        p.add_argument("--max-duration", type=duration,
                       help="refuse plans scheduled to run longer; stop the run at this time")
        add_override_arguments(p)
        add_segment_arguments(p)

    run = sub.add_parser("run", help="run a plan", epilog=EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    plan_args(run)
    run.add_argument("--out", type=Path, metavar="DIR", help="write DIR/results.json")
    run.add_argument("--progress-interval", type=positive(float), default=5.0, metavar="SECONDS",
                     help="seconds between progress lines (default 5)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    add_http_client_argument(run)
    add_start_at_arguments(run)
    add_workers_argument(run)
    add_run_arguments(run)

    validate = sub.add_parser(
        "validate", help="check a plan without sending anything",
        description="Check a plan without sending anything and print it as it would run. "
                    "Needs no secrets: unset environment variables and secrets are listed as "
                    "warnings and checked with placeholders (run refuses to start without "
                    "them).")
    plan_args(validate)
    validate.add_argument("--strict", action="store_true",
                          help="unset environment variables and secrets are errors (exit 2)")

    add_capacity_parser(sub)
    add_demo_parser(sub)
    add_demo_target_parser(sub)
    add_comment_parser(sub)
    add_merge_parser(sub)

    report = sub.add_parser("report", help="render a results.json again")
    report.add_argument("results", type=Path)
    report.add_argument("--format", choices=("text", "json", "md", "junit"), default="text")
    report.add_argument("--template", type=Path, metavar="FILE",
                        help="a Jinja2 Markdown template of your own (for --format md)")
    report.add_argument("--baseline", type=Path, metavar="FILE",
                        help="an earlier results.json: Markdown shows the changes against it")
    return parser


def _load_args(args: argparse.Namespace) -> LoadArgs:
    limits = Limits(max_rps=args.max_rps, max_requests=args.max_requests,
                    max_duration=args.max_duration, allow_live_keys=args.allow_live_keys)
    return LoadArgs(args.plan, target=args.target, profile=args.profile,
                    scenarios=tuple(args.scenario), vars=dict(args.var), limits=limits,
                    extra_allowed_hosts=tuple(args.allow_host),
                    overrides=overrides_from_args(args))


def _load(args: argparse.Namespace, *, placeholders: bool = False) -> Plan:
    a = _load_args(args)
    return load_plan(a.path, target=a.target, profile=a.profile, scenarios=a.scenarios,
                     vars=a.vars, limits=a.limits, extra_allowed_hosts=a.extra_allowed_hosts,
                     placeholders=placeholders, overrides=a.overrides,
                     execution=execution_from_args(args))


def _validate(args: argparse.Namespace) -> int:
    """`validate`: with placeholders for what the environment lacks, listed
    as warnings; --strict makes those one error (exit 2)."""
    from loadaction.plan.timeline import describe
    plan = _load(args, placeholders=True)
    unset = [warning for warning in plan.warnings if warning.unset]
    print_warnings(plan.warnings if not args.strict else
                   [warning for warning in plan.warnings if not warning.unset])
    if args.strict and unset:
        names = ", ".join(dict.fromkeys(warning.unset for warning in unset if warning.unset))
        raise PlanError(f"not set in the environment: {names}", unset[0].source,
                        "--strict needs every environment variable and secret the plan reads")
    print(mask_url_credentials(describe(plan)))
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    github = getattr(args, "github", False)
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "capacity":
            return run_capacity(args)
        if args.command == "demo-target":
            return run_demo_target(args)
        if args.command == "comment":
            return run_comment(args)
        if args.command == "merge":
            return run_merge(args)
        if args.command == "report":
            from loadaction.report import render
            from loadaction.results.io import load_results
            baseline = load_results(args.baseline) if args.baseline else None
            sys.stdout.write(render(load_results(args.results), args.format,
                                    color=args.format == "text" and sys.stdout.isatty(),
                                    template=args.template, baseline=baseline))
            return ExitCode.OK
        if args.command == "validate":
            return _validate(args)
        return _run(args)
    except LoadactionError as exc:
        line = error_line(exc, os.environ) if github else f"loadaction: {exc}"
        print(mask_url_credentials(line), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.NOT_CARRIED_OUT


def _run(args: argparse.Namespace) -> int:
    """`run`: with --github, masks are printed before the plan is even read,
    and the GitHub step runs after the summary with the run's own verdict;
    --no-fail-on-violation changes only the exit code."""
    if args.github:
        mask_token(os.environ)
    if args.out is not None:
        check_output_dir(args.out, "--out", contents=("results.json", "report.md"))
    step = github_step(args, os.environ, load_baseline(args.baseline))
    start_at = start_at_from_args(args)
    plan = _load(args)
    if step is not None:
        step.mask([*plan.secrets.values(), *url_passwords(plan.target)])
    code = asyncio.run(run_and_report(plan, out=args.out, quiet=args.quiet,
                                      progress_interval_s=args.progress_interval,
                                      after=step.after_run if step is not None else None,
                                      baselines=args.baselines, http_client=args.http_client,
                                      start_at=start_at, workers=args.workers,
                                      load_args=_load_args(args)))
    if code == ExitCode.THRESHOLDS_FAILED and not args.fail_on_violation:
        return ExitCode.OK
    return code
