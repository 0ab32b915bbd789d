"""The GitHub flags of `loadaction run`, and `loadaction comment`.

The token is only ever read from the environment ($GITHUB_TOKEN): argv is
visible to every process on the machine and lands in logs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadaction.errors import ExitCode, LoadactionError, PlanError, RunError
from loadaction.github import commands
from loadaction.github.baselines import (
    AUTO,
    DEFAULT_ARTIFACT,
    DEFAULT_RUNS,
    Wanted,
    artifact_problem,
    find_baselines,
    runs_problem,
    workflow_name,
    workflow_problem,
)
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
    add_baseline_argument(group, auto=True)
    group.add_argument("--baseline-workflow", type=_checked(workflow_problem, workflow_name),
                       metavar="FILE|ID",
                       help="with --baseline auto: the workflow whose runs uploaded the "
                            "baselines (default: the running workflow, from "
                            "$GITHUB_WORKFLOW_REF)")
    group.add_argument("--baseline-artifact", type=_checked(artifact_problem),
                       default=DEFAULT_ARTIFACT, metavar="NAME",
                       help=f"with --baseline auto: the artifact holding results.json "
                            f"(default {DEFAULT_ARTIFACT})")
    group.add_argument("--baseline-runs", type=_checked(runs_problem, int),
                       default=DEFAULT_RUNS, metavar="N",
                       help=f"with --baseline auto: how many base-branch runs (default "
                            f"{DEFAULT_RUNS}, at most 20)")
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


def add_baseline_argument(parser: Any, *, auto: bool = False) -> None:
    """`--baseline PATH`, repeatable: results files, or directories whose
    `*.json` files are all read. `auto` (when allowed) asks for the lookup."""
    lookup = (" `auto` (with --github, on pull requests): the results of the last "
              "--baseline-runs successful runs of --baseline-workflow on the base branch, "
              "fetched into DIR/baselines (--out DIR)." if auto else "")
    parser.add_argument("--baseline", action="append", metavar="PATH",
                        type=_baseline_or_auto if auto else _baseline_path,
                        help="an earlier results.json, or a directory of them (every *.json "
                             "in it); repeatable. Reports compare with the newest." + lookup)


def load_baseline(paths: Sequence[Path | str] | Path | None) -> list[dict[str, Any]]:
    """The baseline documents `--baseline` names, newest first (by
    `started_at`): each file, and every `*.json` of each directory in name
    order. Each is checked as a results document; a bad one is a PlanError
    (exit 2) naming it. `auto` is left to `github_step`."""
    if paths is None:
        return []
    if isinstance(paths, Path):
        paths = [paths]
    files: list[Path] = []
    for path in paths:
        if path == AUTO:
            continue
        path = Path(path)
        if path.is_dir():  # empty: no baseline yet (a first run on a new branch)
            files += sorted(p for p in path.glob("*.json") if p.is_file())
        else:
            files.append(path)
    unique = list(dict.fromkeys(files))
    return sorted((load_results(f) for f in unique), key=_started_at, reverse=True)


def _started_at(doc: Mapping[str, Any]) -> datetime:
    try:
        moment = datetime.fromisoformat(str(doc.get("started_at") or ""))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _baseline_path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a results file or a directory")
    return Path(text)


def _baseline_or_auto(text: str) -> Path | str:
    return AUTO if text.strip().lower() == AUTO else _baseline_path(text)


def _checked(problem: Any, convert: Any = str) -> Any:
    def parse(text: str) -> Any:
        if (why := problem(text.strip())) is not None:
            raise argparse.ArgumentTypeError(f"{why}; got {text!r}")
        return convert(text.strip())
    return parse


def mask_token(env: Mapping[str, str]) -> None:
    """Printed before anything else, so not even an error can show the token."""
    for line in commands.add_masks([env.get(TOKEN_ENV, "")]):
        print(line, flush=True)


def github_step(args: argparse.Namespace, env: Mapping[str, str],
                baselines: Sequence[Mapping[str, Any]]) -> GitHubStep | None:
    """The step integration `--github` asks for (None without it).

    `baselines` are `load_baseline(args.baseline)`'s documents; with
    `--baseline auto` they are fetched here instead, before the plan is read
    (GitHub API calls only: nothing is sent to the target). The documents
    end up in `args.baselines`, newest first; the report compares with the
    newest."""
    docs = list(baselines)
    requested = list(getattr(args, "baseline", None) or [])
    auto = AUTO in requested
    if auto and len(requested) > 1:
        raise PlanError("--baseline auto cannot be combined with baseline files")
    if auto and not args.github:
        raise PlanError("--baseline auto needs --github: it reads the pull request's base "
                        "branch from the GitHub Actions environment")
    args.baselines = docs
    if not args.github:
        return None
    if problem := key_problem(args.comment_key):
        raise PlanError(f"--comment-key: {problem}")
    environment = Environment.from_env(env)
    # checked before anything is sent, so a run's results are never lost to them
    if args.summary and environment.summary_path is not None:
        check_appendable_file(environment.summary_path, "GITHUB_STEP_SUMMARY")
    if environment.output_path is not None:
        check_appendable_file(environment.output_path, "GITHUB_OUTPUT")
    if auto:
        docs = args.baselines = _auto_baselines(args, environment, env.get(TOKEN_ENV))
    options = GitHubOptions(comment=args.comment, comment_key=args.comment_key,
                            summary=args.summary, baseline=docs[0] if docs else None,
                            out=args.out)
    return GitHubStep(options, environment, env.get(TOKEN_ENV))


def _auto_baselines(args: argparse.Namespace, environment: Environment,
                    token: str | None) -> list[dict[str, Any]]:
    """`--baseline auto`: fetch into DIR/baselines (--out DIR) and read that
    directory as `--baseline DIR` would. Never fails the run."""
    dest = (args.out / "baselines" if args.out is not None
            else Path(tempfile.mkdtemp(prefix="loadaction-baselines-")))
    wanted = Wanted(workflow=getattr(args, "baseline_workflow", None),
                    artifact=getattr(args, "baseline_artifact", DEFAULT_ARTIFACT),
                    runs=getattr(args, "baseline_runs", DEFAULT_RUNS))
    found = find_baselines(environment, token, wanted, dest)
    for line in found.lines:
        print(line, flush=True)
    if found.directory is None:
        return []
    try:
        return load_baseline([found.directory])
    except PlanError as exc:  # written and checked by the lookup: not expected
        print(commands.warning(f"no baseline: {exc}", title="Baseline"), flush=True)
        return []


def error_line(exc: LoadactionError, env: Mapping[str, str]) -> str:
    """A CLI error as one annotation line, on its plan line when it has one."""
    message = exc.message + (f" ({exc.hint})" if exc.hint else "")
    source = exc.source
    if source is None or not source.line:  # line 0: a flag's value (--vus 0), no file
        return commands.error(f"{source}: {message}" if source else message, title="loadaction")
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
    add_baseline_argument(parser)
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
    baselines = load_baseline(args.baseline)
    outcome = asyncio.run(publish_comment(
        doc, key=args.comment_key, baseline=baselines[0] if baselines else None,
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
