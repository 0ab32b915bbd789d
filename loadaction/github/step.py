"""The GitHub side of `loadaction run --github`: what a workflow step shows
and hands on once the run is over.

Masks go first, before anything else is printed. After the run, in order:
each scenario's log as a group, an error annotation per violated budget
(recovery budgets too) and per fault left in place, the most important
first and at most the 10 GitHub shows (see annotations.py),
report.md beside results.json, the job summary, the sticky PR comment, and
the step outputs (last, because they include the comment's URL). A shard's
document (one segment of a sharded run) gets no comment and no budget
annotations: the merge job, which judges the whole run, posts them. Each part
that fails becomes a `::warning::` and the rest still happens: none of this
may change the run's verdict. Warnings are capped at 10 the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadaction.errors import ExitCode
from loadaction.github import commands
from loadaction.github.annotations import (
    Annotation,
    AnnotationCap,
    chaos_errors,
    run_errors,
)
from loadaction.github.api import DEFAULT_RETRY, RetryPolicy
from loadaction.github.comments import Failed, Posted
from loadaction.github.environment import Environment, EventError
from loadaction.github.outputs import (
    SUMMARY_LIMIT_BYTES,
    append_summary,
    fit_summary,
    write_outputs,
)
from loadaction.github.publish import publish_comment
from loadaction.github.scenario_log import scenario_groups
from loadaction.report import render
from loadaction.report.document import tally_budgets
from loadaction.report.shard import shard_label

COMMENT_MODES = ("always", "on-failure", "never")
FORK_HINT = ("a pull request from a fork gets a read-only token; post the comment from a "
             "workflow_run workflow with `loadaction comment` (see the README)")


@dataclass(frozen=True, slots=True)
class GitHubOptions:
    comment: str = "always"
    comment_key: str = "default"
    summary: bool = True
    baseline: Mapping[str, Any] | None = None
    out: Path | None = None  # the results directory (--out)


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class GitHubStep:
    """One step's GitHub integration; `write` prints a line of the step's log."""

    def __init__(self, options: GitHubOptions, env: Environment, token: str | None,
                 write: Callable[[str], None] = _print,
                 policy: RetryPolicy = DEFAULT_RETRY) -> None:
        self._options = options
        self._env = env
        self._token = token or None
        self._write = write
        self._policy = policy
        self._warnings = AnnotationCap("warning")

    def mask(self, secrets: Iterable[str]) -> None:
        for line in commands.add_masks(secrets):
            self._write(line)

    def warn(self, message: str) -> None:
        """A warning annotation; past GitHub's cap they are counted instead
        (the count and the rest come at the end of `after_run`)."""
        for line in self._warnings.add(Annotation("warning", message, "loadaction")):
            self._write(line)

    async def after_run(self, doc: Mapping[str, Any], code: ExitCode) -> None:
        """Everything GitHub gets from a finished (or stopped) run; `code` is
        the run's own verdict, before --no-fail-on-violation. `passed` never
        contradicts the annotations: a recovery budget or rollback that failed
        in the document makes it false whatever `code` says."""
        for line in scenario_groups(doc):
            self._write(line)
        shard = shard_label(doc)
        if shard is not None:
            self._write(f"loadaction: {shard}: its budgets are judged on this share only; no "
                        f"PR comment or budget annotations here (the merge job posts them)")
        errors = AnnotationCap("error", self._listed_in())
        for annotation in run_errors(doc, self._env.relative_path, budgets_judged=shard is None):
            for line in errors.add(annotation):
                self._write(line)
        for line in errors.finish():
            self._write(line)
        chaos = chaos_errors(doc, self._env.relative_path)
        outputs = {
            "passed": "true" if code == ExitCode.OK and not chaos else "false",
            "violations": str(tally_budgets(doc).violated),
            "results-json": "",
            "report-md": "",
            "comment-url": "",
        }
        out = self._options.out
        if out is not None:
            outputs["results-json"] = self._env.relative_path(out / "results.json")
            report = out / "report.md"
            try:
                report.write_text(self._markdown(doc, None), encoding="utf-8")
                outputs["report-md"] = self._env.relative_path(report)
            except OSError as exc:
                self.warn(f"cannot write {report}: {exc.strerror or exc}")
        if self._options.summary and self._env.summary_path is not None:
            self._summary(doc, self._env.summary_path)
        if shard is None:
            outputs["comment-url"] = await self._comment(doc, failing=code != ExitCode.OK)
        if self._env.output_path is not None:
            try:
                write_outputs(self._env.output_path, outputs)
            except OSError as exc:
                self.warn(f"cannot write the step outputs: {exc.strerror or exc}")
        for line in self._warnings.finish():
            self._write(line)

    def _listed_in(self) -> list[str]:
        """Where every violated budget, failed recovery and fault left in
        place is listed, for the annotation that counts those past the cap."""
        places = []
        if self._options.summary and self._env.summary_path is not None:
            places.append("the job summary")
        out = self._options.out
        if out is not None:
            places += [self._env.relative_path(out / "report.md"),
                       self._env.relative_path(out / "results.json")]
        return places

    def _markdown(self, doc: Mapping[str, Any], max_chars: int | None) -> str:
        return render(dict(doc), "md", baseline=self._options.baseline, max_chars=max_chars)

    def _summary(self, doc: Mapping[str, Any], path: Path) -> None:
        # One byte is kept for the newline append_summary may add.
        limit = SUMMARY_LIMIT_BYTES - 1
        try:
            append_summary(path, fit_summary(lambda n: self._markdown(doc, n), limit))
        except (OSError, ValueError) as exc:
            self.warn(f"job summary not written: {getattr(exc, 'strerror', None) or exc}")

    async def _comment(self, doc: Mapping[str, Any], failing: bool) -> str:
        options, env = self._options, self._env
        if options.comment == "never" or not env.is_pull_request:
            return ""
        try:
            pr = env.pull_request_number()
        except EventError as exc:
            self.warn(f"PR comment skipped: {exc}")
            return ""
        if pr is None or not env.repository:
            self.warn("PR comment skipped: GITHUB_REPOSITORY is not set")
            return ""
        if self._token is None:
            self.warn("PR comment skipped: no github-token")
            return ""
        outcome = await publish_comment(
            doc, key=options.comment_key, baseline=options.baseline, api_url=env.api_url,
            token=self._token, repo=env.repository, pr=pr,
            create=options.comment == "always" or failing, policy=self._policy)
        if isinstance(outcome, Posted):
            self._write(f"loadaction: PR comment {'posted' if outcome.created else 'updated'}: "
                        f"{outcome.url}")
            return outcome.url
        if isinstance(outcome, Failed):
            hint = f" ({FORK_HINT})" if outcome.forbidden else ""
            self.warn(f"PR comment not posted: {outcome.reason}{hint}")
        return ""
