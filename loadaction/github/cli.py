"""The GitHub flags of `loadaction run`, and `loadaction comment`.

The token is only ever read from the environment ($GITHUB_TOKEN): argv is
visible to every process on the machine and lands in logs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadaction.errors import ExitCode, LoadactionError, PlanError, RunError
from loadaction.github import commands
from loadaction.github.comments import Failed, Posted, Skipped, key_problem
from loadaction.github.environment import DEFAULT_API_URL, Environment
from loadaction.github.publish import publish_comment
from loadaction.github.step import COMMENT_MODES, GitHubOptions, GitHubStep
from loadaction.results.io import load_results
from loadaction.writable import check_appendable_file

TOKEN_ENV = "GITHUB_TOKEN"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("GitHub Actions")
    group.add_argument("--github", action="store_true",
                       help="act as a GitHub Actions step: mask secrets, group each "
                            "scenario's log, annotate violated budgets, write report.md, the "
                            "job summary, the step outputs and the sticky PR comment (token "
                            "from $GITHUB_TOKEN)")
    group.add_argument("--baseline", type=Path, metavar="FILE",
                       help="an earlier results.json; Markdown reports show the changes against it")
    group.add_argument("--comment", choices=COMMENT_MODES, default="always",
                       help="PR comment on pull-request events: always (default), on-failure "
                            "(and updating an earlier one), never")
    group.add_argument("--comment-key", default="default", metavar="KEY",
                       help="tells apart the sticky comments of several jobs or matrix legs")
    group.add_argument("--no-summary", dest="summary", action="store_false",
                       help="do not append the report to the job summary")
    group.add_argument("--no-fail-on-violation", dest="fail_on_violation", action="store_false",
                       help="exit 0 when a budget is violated (still 2 and 3 for invalid and "
                            "not carried out)")


def load_baseline(path: Path | None) -> dict[str, Any] | None:
    return None if path is None else load_results(path)


def mask_token(env: Mapping[str, str]) -> None:
    """Printed before anything else, so not even an error can show the token."""
    for line in commands.add_masks([env.get(TOKEN_ENV, "")]):
        print(line, flush=True)


def github_step(args: argparse.Namespace, env: Mapping[str, str],
                baseline: Mapping[str, Any] | None) -> GitHubStep | None:
    """The step integration `--github` asks for (None without it)."""
    if not args.github:
        return None
    if problem := key_problem(args.comment_key):
        raise PlanError(f"--comment-key: {problem}")
    options = GitHubOptions(comment=args.comment, comment_key=args.comment_key,
                            summary=args.summary, baseline=baseline, out=args.out)
    environment = Environment.from_env(env)
    # checked before anything is sent, so a run's results are never lost to them
    if args.summary and environment.summary_path is not None:
        check_appendable_file(environment.summary_path, "GITHUB_STEP_SUMMARY")
    if environment.output_path is not None:
        check_appendable_file(environment.output_path, "GITHUB_OUTPUT")
    return GitHubStep(options, environment, env.get(TOKEN_ENV))


def error_line(exc: LoadactionError, env: Mapping[str, str]) -> str:
    """A CLI error as one annotation line, on its plan line when it has one."""
    message = exc.message + (f" ({exc.hint})" if exc.hint else "")
    source = exc.source
    if source is None:
        return commands.error(message, title="loadaction")
    relative = Environment.from_env(env).relative_path
    return commands.error(message, file=relative(source.file), line=source.line,
                          title="loadaction")


# ------------------------------------------------------------- comment


def add_comment_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "comment", help="post or update the sticky PR comment from a results.json",
        description="Render results.json as the sticky PR comment and post it (or update the "
                    "earlier one with the same key). For workflow_run workflows that comment on "
                    "pull requests from forks. The token is read from $GITHUB_TOKEN, the API "
                    f"from $GITHUB_API_URL (default {DEFAULT_API_URL}). Exit 0 posted, "
                    "2 invalid arguments or results, 3 not posted.")
    parser.add_argument("--results", type=Path, required=True, metavar="FILE")
    parser.add_argument("--pr", type=_pr_number, required=True, metavar="N")
    parser.add_argument("--repo", metavar="OWNER/NAME", help="default: $GITHUB_REPOSITORY")
    parser.add_argument("--comment-key", default="default", metavar="KEY")
    parser.add_argument("--baseline", type=Path, metavar="FILE")
    parser.add_argument("--head-sha", metavar="SHA",
                        help="refuse unless the PR's head is this commit (the run's "
                             "github.event.workflow_run.head_sha)")
    return parser


def _pr_number(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected a pull request number, got {text!r}")
    return int(text)


def run_comment(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    repo = args.repo or env.get("GITHUB_REPOSITORY", "")
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise PlanError(f"--repo: expected OWNER/NAME, got {repo!r}" if repo
                        else "--repo is required when $GITHUB_REPOSITORY is not set")
    if problem := key_problem(args.comment_key):
        raise PlanError(f"--comment-key: {problem}")
    token = env.get(TOKEN_ENV, "")
    if not token:
        raise PlanError(f"${TOKEN_ENV} is not set: the comment needs a token")
    if env.get("GITHUB_ACTIONS") == "true":
        mask_token(env)
    doc = load_results(args.results)
    baseline = load_baseline(args.baseline)
    outcome = asyncio.run(publish_comment(
        doc, key=args.comment_key, baseline=baseline,
        api_url=Environment.from_env(env).api_url, token=token, repo=repo, pr=args.pr,
        head_sha=args.head_sha))
    if isinstance(outcome, Posted):
        print(f"loadaction: PR comment {'posted' if outcome.created else 'updated'}: {outcome.url}")
        return ExitCode.OK
    if isinstance(outcome, Skipped):  # not reachable with create=True; kept total
        print(f"loadaction: {outcome.reason}", file=sys.stderr)
        return ExitCode.OK
    assert isinstance(outcome, Failed)
    raise RunError(f"PR comment not posted: {outcome.reason}")
