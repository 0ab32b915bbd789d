"""`loadaction merge SHARD... --out DIR`: one run's shards (or workers'
documents) merged into one results document (results/merge.py), judged
again, written, rendered, and ended with `run`'s exit codes.

The fan-in of a sharded CI run calls `merge_and_report` (or `merge_files`
for the document and its exit code alone), so the action's merge mode and
the command line cannot disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadaction.engine.status import RunStatus
from loadaction.errors import ExitCode, PlanError
from loadaction.github.cli import add_run_arguments, github_step, load_baseline, mask_token
from loadaction.report import render
from loadaction.report.document import failed_rollbacks, tally_budgets
from loadaction.results.io import load_results, write_results
from loadaction.results.merge import merge_documents
from loadaction.session import AfterRun, exit_code
from loadaction.writable import check_output_dir

RESULTS_FILE = "results.json"


def add_merge_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "merge", help="merge the results of one run's shards into one, exactly",
        description="Merge the results.json of a run's shards (--shard i/N, "
                    "--execution-segment) into one document: counts summed, histograms "
                    "merged exactly (HDR), thresholds judged again on the merged data, "
                    "regression budgets against --baseline. Refused (exit 2): shards of "
                    "different plans, profiles or segment sequences, overlapping segments, "
                    "and missing ones unless --allow-partial. Exit codes as for `run`.")
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                   help="a shard's results.json, or a directory: every results.json under it")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write DIR/results.json and DIR/report.md")
    p.add_argument("--allow-partial", action="store_true",
                   help="merge even when segments are missing (the verdict says which)")
    p.add_argument("--quiet", action="store_true", help="no summary on stdout")
    add_run_arguments(p)  # --baseline, and --github for the fan-in job of a sharded run
    return p


def shard_files(paths: Sequence[Path]) -> list[Path]:
    """Each file as given, each directory's results.json files (at any
    depth: download-artifact puts every artifact in a folder of its own);
    a file named twice is read once."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob(RESULTS_FILE) if p.is_file())
            if not found:
                raise PlanError(f"{path}: no {RESULTS_FILE} in this directory")
            files += found
        else:
            files.append(path)
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def merge_files(paths: Sequence[Path], baselines: Sequence[Mapping[str, Any]] = (),
                allow_partial: bool = False) -> tuple[dict[str, Any], ExitCode]:
    """The merged document of the shards at `paths` and the exit code `run`
    would give it. PlanError (exit 2) for what is not a results document or
    cannot be merged."""
    named = [(str(f), load_results(f)) for f in shard_files(paths)]
    doc = merge_documents(named, baselines=baselines, allow_partial=allow_partial)
    return doc, merged_exit_code(doc)


def merged_exit_code(doc: Mapping[str, Any]) -> ExitCode:
    return exit_code(RunStatus(doc["status"]), tally_budgets(doc).violated,
                     len(failed_rollbacks(doc)))


def merge_and_report(paths: Sequence[Path], *, out: Path | None,
                     baselines: Sequence[Mapping[str, Any]] = (), allow_partial: bool = False,
                     quiet: bool = False, after: AfterRun | None = None) -> ExitCode:
    """Merge, write DIR/results.json and DIR/report.md, print the summary;
    `after` acts on the merged document as on a run's (the GitHub step)."""
    doc, code = merge_files(paths, baselines, allow_partial)
    if out is not None:
        write_results(out / RESULTS_FILE, doc)
        (out / "report.md").write_text(render(doc, "md"), encoding="utf-8")
    if not quiet:
        sys.stdout.write(render(doc, "text", color=sys.stdout.isatty()))
    if after is not None:
        asyncio.run(after(doc, code))
    return code


def run_merge(args: argparse.Namespace) -> int:
    """As `run` does: with --github the token is masked before anything
    is read, and the step (summary, outputs, annotations, the sticky
    comment) acts on the merged document; --no-fail-on-violation changes
    only the exit code."""
    if args.github:
        mask_token(os.environ)
    if args.out is not None:
        check_output_dir(args.out, "--out", contents=(RESULTS_FILE, "report.md"))
    step = github_step(args, os.environ, load_baseline(args.baseline))
    code = merge_and_report(args.results, out=args.out, baselines=args.baselines,
                            allow_partial=args.allow_partial, quiet=args.quiet,
                            after=step.after_run if step is not None else None)
    if code == ExitCode.THRESHOLDS_FAILED and not args.fail_on_violation:
        return ExitCode.OK
    return code
