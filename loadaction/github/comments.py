"""The sticky pull-request comment, over GitHub's REST API (api.py).

One comment per `comment-key`, found again by a hidden marker at the start
of its body and edited in place, so a PR shows the latest run instead of a
comment per push. GitHub's limits are part of the job: api.py retries 5xx,
429 and rate-limited 403s with capped backoff (honouring `Retry-After` and
`x-ratelimit-reset`); a 403/404 that is not a rate limit means the token
may not comment (a fork's read-only token) and ends as a `Failed` the caller
turns into a warning. Nothing here raises for an API problem: the gate's
verdict must never depend on whether a comment could be written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from loadaction.github.api import (
    Ambiguous,
    ApiError,
    GitHubApi,
)

# GitHub refuses longer comment bodies (422).
COMMENT_LIMIT = 65_536
MAX_KEY_CHARS = 100
_MAX_PAGES = 200  # 20,000 comments: a PR with more is not one we should scan


def marker(key: str) -> str:
    return f"<!-- loadaction:{key} -->"


def key_problem(key: str) -> str | None:
    """Why `key` cannot sit inside an HTML comment, or None. Keys come from
    workflow expressions (matrix values), so they are checked, not trusted."""
    if not key or not key.strip():
        return "the comment key is empty"
    if len(key) > MAX_KEY_CHARS:
        return f"the comment key is longer than {MAX_KEY_CHARS} characters"
    if "--" in key or any(c in key for c in "<>") or not key.isprintable():
        return "the comment key may not contain '--', '<', '>' or control characters"
    return None


def report_budget(key: str) -> int:
    """Characters left for the report once the marker line is in the body."""
    return COMMENT_LIMIT - len(marker(key)) - 1


def comment_body(key: str, markdown: str) -> str:
    body = f"{marker(key)}\n{markdown}"
    if len(body) > COMMENT_LIMIT:
        raise ValueError(f"comment body of {len(body)} characters exceeds {COMMENT_LIMIT}")
    return body


@dataclass(frozen=True, slots=True)
class Posted:
    url: str
    created: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    """Nothing to do (on-failure mode, a passing run and no earlier comment)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    forbidden: bool = False  # the token may not comment here (e.g. a fork's read-only token)


Outcome = Posted | Skipped | Failed


async def issue_comments(api: GitHubApi, repo: str, pr: int) -> AsyncIterator[dict[str, Any]]:
    """Every comment on the PR, oldest first, page by page via `Link` headers."""
    url = api.url(f"/repos/{repo}/issues/{pr}/comments?per_page=100")
    async for comment in api.pages(url, what=f"comments on #{pr}", max_pages=_MAX_PAGES):
        yield comment


async def upsert_comment(api: GitHubApi, repo: str, pr: int, key: str, body: str,
                         *, create: bool = True) -> Outcome:
    """Edit the PR's comment that starts with the key's marker, else post one
    (unless `create` is False). Never raises for API problems."""
    try:
        return await _upsert(api, repo, pr, key, body, create)
    except ApiError as exc:
        return Failed(str(exc), forbidden=exc.forbidden)


async def _upsert(api: GitHubApi, repo: str, pr: int, key: str, body: str,
                  create: bool) -> Outcome:
    tag = marker(key)
    last: Ambiguous | None = None
    for _ in range(api.policy.attempts):
        candidates = [c async for c in issue_comments(api, repo, pr)
                      if isinstance(c.get("body"), str) and c["body"].startswith(tag)
                      and isinstance(c.get("id"), int)]
        for comment in candidates:
            try:
                url = api.url(f"/repos/{repo}/issues/comments/{comment['id']}")
                response = await api.send("PATCH", url, {"body": body})
            except ApiError as exc:
                if exc.status in (403, 404):
                    continue  # not ours to edit (a copied marker): try the next, then post
                raise
            return Posted(_html_url(response.data), created=False)
        if not create:
            return Skipped("no earlier comment to update")
        try:
            response = await api.send("POST", api.url(f"/repos/{repo}/issues/{pr}/comments"),
                                      {"body": body}, retry_ambiguous=False)
        except Ambiguous as exc:
            last = exc  # look again before posting again: it may have landed
            if exc.wait_s > api.policy.max_delay_s:
                raise ApiError(f"{exc} (asked to wait {exc.wait_s:.0f} s: not waiting)") from None
            await api.sleep(exc.wait_s)
            continue
        return Posted(_html_url(response.data), created=True)
    raise ApiError(f"{last} (gave up after {api.policy.attempts} attempts)")


async def pull_request_head(api: GitHubApi, repo: str, pr: int) -> str:
    """The PR's current head commit, to check a comment's results belong to it."""
    response = await api.send("GET", api.url(f"/repos/{repo}/pulls/{pr}"))
    head = response.data.get("head") if isinstance(response.data, dict) else None
    sha = head.get("sha") if isinstance(head, dict) else None
    if not isinstance(sha, str):
        raise ApiError(f"GET /repos/{repo}/pulls/{pr}: no head commit in the response")
    return sha


def _html_url(data: Any) -> str:
    url = data.get("html_url") if isinstance(data, dict) else None
    return url if isinstance(url, str) else ""
