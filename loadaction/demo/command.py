"""`loadaction demo`: the bundled target and the four ticketing scenarios, with
no set-up at all — the target starts on a free loopback port, the plan is
pointed at it with the target's own keys, and both stop when the run ends.
The target runs in a child process (see `child`), so the memory its
/metrics reports is its own, not the load generator's.

The plan's probes watch the target's /metrics, and with `--database-url`
its PostgreSQL too: the URL reaches the plan only as the optional secret
DATABASE_URL (masked wherever it could be printed). Without it an inherited
DATABASE_URL is dropped, so a SQLite demo never probes some other database."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from loadaction.argtypes import (
    add_segment_arguments, add_start_at_arguments, add_workers_argument, execution_from_args,
    positive,
)
from loadaction.demo.faults import FLAG_HELP, Invalid, parse_flags
from loadaction.demo.auth import DemoKeys
from loadaction.demo.child import child_target
from loadaction.demo.serve import StoreUnavailable, client_env
from loadaction.errors import PlanError, RunError
from loadaction.github.cli import add_baseline_argument, load_baseline
from loadaction.plan import load_plan
from loadaction.plan.overrides import add_override_arguments, overrides_from_args
from loadaction.session import add_http_client_argument, run_and_report, start_at_from_args
from loadaction.workers.launch import LoadArgs
from loadaction.writable import check_output_dir

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
PLAN = SCENARIOS / "ticketing.yml"
CHAOS_PLAN = SCENARIOS / "chaos.yml"
DEFAULT_PROFILE = "pr"  # about a minute
DATABASE_SECRET = "DATABASE_URL"  # the plan's optional secret: its db probe runs when set
_PROBE_ENV = ("DATABASE_URL", "TARGET_METRICS", "TARGET_METRICS_URL")  # a staging's, not the demo's


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="run the four ticketing scenarios against the bundled demo target",
        description="Start the demo target on 127.0.0.1, run scenarios/ticketing.yml against it, "
                    "print the summary, write results, stop the target. Exit code as for `run`.")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        choices=("smoke", "pr", "full", "stress", "soak"),
                        help="smoke: seconds; pr: about a minute (default); full: the original "
                             "plan's numbers (about seven minutes); stress: up to 5x full, in "
                             "steps (about ten minutes); soak: ticket-purchase held 30 minutes "
                             "at pr's load (about 36 minutes)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help=f"break the target on purpose: {FLAG_HELP} (repeatable)")
    parser.add_argument("--chaos", action="store_true",
                        help="run scenarios/chaos.yml: the same scenarios with faults on their "
                             "timeline (duplicated, reordered and forged webhooks, aborted and "
                             "retried checkouts, a slow target with a recovery budget)")
    parser.add_argument("--database-url", metavar="URL",
                        help="postgresql://… to back the target with PostgreSQL (default SQLite)")
    parser.add_argument("--scenario", action="append", default=[], metavar="NAME",
                        help="run only this scenario (repeatable)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write DIR/results.json")
    add_baseline_argument(parser)  # earlier demo results: the regression budgets judge against them
    parser.add_argument("--progress-interval", type=positive(float), default=5.0, metavar="SECONDS")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_http_client_argument(parser)
    add_start_at_arguments(parser)
    add_workers_argument(parser)
    add_override_arguments(parser)
    add_segment_arguments(parser)
    return parser


async def _demo(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output_dir(args.out, "--out", contents=("results.json",))
    baselines = load_baseline(args.baseline)  # before the target starts: a bad file is exit 2
    execution = execution_from_args(args)  # so are mismatched segment flags
    start_at = start_at_from_args(args)
    faults = parse_flags(args.fault)
    if isinstance(faults, Invalid):
        raise PlanError(faults.message)
    try:
        keys = DemoKeys.generate()
        async with child_target(args.database_url, faults, keys) as (url, _store):
            env = {name: value for name, value in os.environ.items() if name not in _PROBE_ENV}
            env.update(client_env(url, keys))
            if args.database_url is not None:
                env[DATABASE_SECRET] = args.database_url
            load = LoadArgs(str(CHAOS_PLAN if args.chaos else PLAN), target=url,
                            profile=args.profile, scenarios=tuple(args.scenario),
                            overrides=overrides_from_args(args), env=env)
            plan = load_plan(load.path, target=url, profile=load.profile,
                             scenarios=load.scenarios, overrides=load.overrides, env=env,
                             execution=execution)
            return await run_and_report(plan, out=args.out, quiet=args.quiet,
                                        progress_interval_s=args.progress_interval,
                                        baselines=baselines, http_client=args.http_client,
                                        start_at=start_at, workers=args.workers,
                                        load_args=load)
    except ImportError as exc:
        raise PlanError(f"--database-url needs asyncpg ({exc.name} is not installed)",
                        hint="pip install 'loadaction[postgres]'") from None
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    except StoreUnavailable as exc:
        raise RunError(f"the demo target cannot open its database: {exc}") from None


def run_demo(args: argparse.Namespace) -> int:
    plan = CHAOS_PLAN if args.chaos else PLAN
    if not plan.is_file():
        raise RunError(f"the bundled scenarios are missing ({plan})")
    return asyncio.run(_demo(args))



