"""Render a results document as the sticky comment and put it on the PR.

Shared by the action's run (`loadaction run --github`) and by
`loadaction comment`, which posts the same comment from a later
`workflow_run` workflow that holds a write token (the fork-safe pattern):
both render from results.json, so both comments read the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadaction.github.api import DEFAULT_RETRY, ApiError, GitHubApi, RetryPolicy, new_session
from loadaction.github.comments import (
    Failed,
    Outcome,
    comment_body,
    pull_request_head,
    report_budget,
    upsert_comment,
)
from loadaction.report import render


def comment_markdown(doc: Mapping[str, Any], key: str,
                     baseline: Mapping[str, Any] | None) -> str:
    """The whole comment body: marker line, then the report cut to fit."""
    report = render(dict(doc), "md", baseline=baseline, max_chars=report_budget(key))
    return comment_body(key, report)


async def publish_comment(doc: Mapping[str, Any], *, key: str,
                          baseline: Mapping[str, Any] | None, api_url: str, token: str,
                          repo: str, pr: int, create: bool = True,
                          head_sha: str | None = None,
                          policy: RetryPolicy = DEFAULT_RETRY) -> Outcome:
    """Post or update the comment. With `head_sha`, first make sure the PR's
    head is that commit: a workflow_run workflow takes the PR number from an
    artifact the PR's own code could have written."""
    body = comment_markdown(doc, key, baseline)
    async with new_session() as session:
        api = GitHubApi(session, api_url, token, policy)
        if head_sha is not None:
            try:
                actual = await pull_request_head(api, repo, pr)
            except ApiError as exc:
                return Failed(str(exc), forbidden=exc.forbidden)
            if actual != head_sha:
                return Failed(f"pull request #{pr} is at {actual[:12]}, not {head_sha[:12]}: "
                              f"these results are not for its current head")
        return await upsert_comment(api, repo, pr, key, body, create=create)
