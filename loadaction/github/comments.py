"""The sticky pull-request comment, over GitHub's REST API with aiohttp.

One comment per `comment-key`, found again by a hidden marker at the start
of its body and edited in place, so a PR shows the latest run instead of a
comment per push. GitHub's limits are part of the job: 5xx, 429 and
rate-limited 403s are retried with capped backoff (honouring `Retry-After`
and `x-ratelimit-reset`); a 403/404 that is not a rate limit means the token
may not comment (a fork's read-only token) and ends as a `Failed` the caller
turns into a warning. Nothing here raises for an API problem: the gate's
verdict must never depend on whether a comment could be written.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from loadaction import __version__

# GitHub refuses longer comment bodies (422).
COMMENT_LIMIT = 65_536
MAX_KEY_CHARS = 100
_MAX_PAGES = 200  # 20,000 comments: a PR with more is not one we should scan

Sleep = Callable[[float], Awaitable[None]]


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
class RetryPolicy:
    """How hard to try. A server asking us to wait longer than `max_delay_s`
    (an exhausted hourly quota) is not waited for: the job would sit idle."""

    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    timeout_s: float = 30.0
    # GitHub: after a secondary rate limit without Retry-After, wait at least a minute.
    secondary_wait_s: float = 60.0


DEFAULT_RETRY = RetryPolicy()


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


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def forbidden(self) -> bool:
        return self.status in (401, 403, 404)


class _Ambiguous(Exception):
    """A write whose fate is unknown (5xx, dropped connection): it may have landed."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    data: Any
    next_url: str | None


class GitHubApi:
    """A few REST calls with GitHub's headers, retries and rate-limit manners."""

    def __init__(self, session: aiohttp.ClientSession, api_url: str, token: str,
                 policy: RetryPolicy = DEFAULT_RETRY, sleep: Sleep = asyncio.sleep) -> None:
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._origin = _origin(self._api_url)
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"loadaction/{__version__}",
        }
        self._policy = policy
        self._sleep = sleep

    def url(self, path: str) -> str:
        return f"{self._api_url}{path}"

    async def issue_comments(self, repo: str, pr: int) -> AsyncIterator[dict[str, Any]]:
        """Every comment on the PR, oldest first, page by page via `Link` headers."""
        url: str | None = self.url(f"/repos/{repo}/issues/{pr}/comments?per_page=100")
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            response = await self.send("GET", url)
            if not isinstance(response.data, list):
                raise ApiError(f"GET {_path(url)}: expected a list of comments")
            for item in response.data:
                if isinstance(item, dict):
                    yield item
            url = response.next_url
        raise ApiError(f"more than {_MAX_PAGES} pages of comments on #{pr}")

    async def send(self, method: str, url: str, payload: dict[str, Any] | None = None,
                   *, retry_ambiguous: bool = True) -> _Response:
        """One call with retries. A non-idempotent write (`retry_ambiguous`
        False) is not repeated after a 5xx or a lost connection: it may have
        landed, and the caller must look before writing again."""
        if _origin(url) != self._origin:
            raise ApiError(f"refusing to send the token to {_origin(url)} (API is {self._origin})")
        policy = self._policy
        for attempt in range(1, policy.attempts + 1):
            try:
                async with self._session.request(
                    method, url, json=payload, headers=self._headers,
                    timeout=aiohttp.ClientTimeout(total=policy.timeout_s), allow_redirects=False,
                ) as resp:
                    raw = await resp.read()
                    status, headers = resp.status, resp.headers
                    next_url = _next_link(resp)
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{method} {_path(url)}: {type(exc).__name__} {exc}".rstrip()
                wait, ambiguous = self._backoff(attempt), method != "GET"
            else:
                data = _json(raw)
                if status < 300:
                    return _Response(status, data, next_url)
                message = f"{method} {_path(url)}: HTTP {status} {_message(data)}".rstrip()
                limited = _rate_limited(status, headers, data)
                if not (limited or status >= 500):
                    raise ApiError(message, status)
                wait = _server_wait(headers, time.time())
                if wait is None:
                    wait = self._backoff(attempt)
                    if limited:
                        wait = max(wait, policy.secondary_wait_s)
                ambiguous, problem = status >= 500, message
            if ambiguous and not retry_ambiguous:
                raise _Ambiguous(problem, wait)
            if attempt == policy.attempts:
                raise ApiError(f"{problem} (gave up after {attempt} attempts)")
            if wait > policy.max_delay_s:
                raise ApiError(f"{problem} (rate limited for another {wait:.0f} s: not waiting)")
            await self._sleep(wait)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter, so matrix legs do not retry in lock step."""
        delay = self._policy.base_delay_s * 2 ** (attempt - 1)
        return min(delay * random.uniform(1.0, 1.25), self._policy.max_delay_s)

    @property
    def policy(self) -> RetryPolicy:
        return self._policy

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)


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
    last: _Ambiguous | None = None
    for _ in range(api.policy.attempts):
        candidates = [c async for c in api.issue_comments(repo, pr)
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
        except _Ambiguous as exc:
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


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(raise_for_status=False)


# ---------------------------------------------------------------- helpers


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _path(url: str) -> str:
    return urlsplit(url).path


def _next_link(resp: aiohttp.ClientResponse) -> str | None:
    link = resp.links.get("next")
    url = link.get("url") if link else None
    return str(url) if url is not None else None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _message(data: Any) -> str:
    message = data.get("message") if isinstance(data, dict) else None
    return " ".join(str(message).split())[:200] if message else ""


def _html_url(data: Any) -> str:
    url = data.get("html_url") if isinstance(data, dict) else None
    return url if isinstance(url, str) else ""


def _rate_limited(status: int, headers: Any, data: Any) -> bool:
    """429 always; 403 only with GitHub's rate-limit signs (a primary limit's
    exhausted quota, a secondary limit's Retry-After or message), because a
    plain 403 is a permission problem that retrying will not fix."""
    if status == 429:
        return True
    if status != 403:
        return False
    return (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers
            or "rate limit" in _message(data).lower())


def _server_wait(headers: Any, now: float) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or an HTTP
    date), else the primary limit's reset time; None when it said nothing."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        text = retry_after.strip()
        if text.isdigit():
            return float(text)
        try:
            return max(email.utils.parsedate_to_datetime(text).timestamp() - now, 0.0)
        except (TypeError, ValueError):
            pass
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            return max(float(reset) - now, 0.0) + 1.0
    return None
