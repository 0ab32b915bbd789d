"""GitHub's REST API over aiohttp, with GitHub's manners: the headers it
asks for, retries with capped backoff on 5xx, 429 and rate-limited 403s
(honouring `Retry-After` and `x-ratelimit-reset`), pagination by `Link`
headers, and downloads that answer with a redirect to another host.

The token goes only to the API's own origin (scheme, host and port of
`GITHUB_API_URL`): a pagination link elsewhere is refused, and a download's
redirect (a signed URL on a blob store) is followed without it.

The sticky comment (comments.py) and the baseline lookup (baselines.py)
both talk to GitHub through `GitHubApi`; neither retries on its own.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
from yarl import URL

from loadaction import __version__

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024


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
    # a whole download (redirect and archive); archives are larger than API answers
    download_timeout_s: float = 120.0


DEFAULT_RETRY = RetryPolicy()


class ApiError(Exception):
    """A call that failed for good. `status` is the API's HTTP status, when it
    answered; a download's blob store is not the API, so its answers carry none."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def forbidden(self) -> bool:
        return self.status in (401, 403, 404)


class TooManyPages(ApiError):
    """A listing longer than the caller was willing to read."""


class Ambiguous(Exception):
    """A write whose fate is unknown (5xx, dropped connection): it may have landed."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    data: Any
    next_url: str | None


@dataclass(frozen=True, slots=True)
class _Retry:
    """One attempt's failure that another attempt may fix."""

    problem: str
    wait_s: float | None  # None: our own backoff
    ambiguous: bool = False
    limited: bool = False


class GitHubApi:
    """REST calls with GitHub's headers, retries and rate-limit manners."""

    def __init__(self, session: aiohttp.ClientSession, api_url: str, token: str,
                 policy: RetryPolicy = DEFAULT_RETRY, sleep: Sleep = asyncio.sleep) -> None:
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._origin = origin(self._api_url)
        self._anonymous = {"User-Agent": f"loadaction/{__version__}"}
        self._headers = {
            **self._anonymous,
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        self._policy = policy
        self._sleep = sleep

    def url(self, path: str) -> str:
        return f"{self._api_url}{path}"

    @property
    def policy(self) -> RetryPolicy:
        return self._policy

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    # ------------------------------------------------------------ calls

    async def send(self, method: str, url: str, payload: dict[str, Any] | None = None,
                   *, retry_ambiguous: bool = True) -> Response:
        """One call with retries. A non-idempotent write (`retry_ambiguous`
        False) is not repeated after a 5xx or a lost connection: it may have
        landed, and the caller must look before writing again."""
        headers = self._token_headers(url)

        async def attempt() -> Response | _Retry:
            try:
                async with self._session.request(
                    method, url, json=payload, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self._policy.timeout_s),
                ) as resp:
                    raw = await resp.read()
                    status, resp_headers, next_url = resp.status, resp.headers, _next_link(resp)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return _Retry(_failure(method, url, exc), None, ambiguous=method != "GET")
            data = _json(raw)
            if status < 300:
                return Response(status, data, next_url)
            return _classify(method, url, status, resp_headers, data)

        return await self._retrying(attempt, retry_ambiguous=retry_ambiguous)

    async def pages(self, url: str, *, what: str, key: str | None = None,
                    max_pages: int = 200) -> AsyncIterator[dict[str, Any]]:
        """The items of every page, following `Link: rel="next"`. `key` names
        the list in an object answer (`workflow_runs`); None: the answer is the
        list. More than `max_pages` pages is an error, not a longer wait."""
        next_url: str | None = url
        for _ in range(max_pages):
            if next_url is None:
                return
            response = await self.send("GET", next_url)
            data = response.data
            items = data.get(key) if key is not None and isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ApiError(f"GET {path_of(next_url)}: expected a list of {what}")
            for item in items:
                if isinstance(item, dict):
                    yield item
            next_url = response.next_url
        raise TooManyPages(f"more than {max_pages} pages of {what}")

    async def download(self, url: str, sink: IO[bytes], max_bytes: int) -> int:
        """Write what the API's `url` redirects to (GitHub: a signed blob URL,
        valid for a minute, on another host) into `sink`; the byte count.

        The API call carries the token; the redirect is followed without it,
        wherever it points. A retry starts again from the API, for a fresh
        URL. More than `max_bytes` is refused while reading, whatever the
        server said the length would be."""
        headers = self._token_headers(url)

        async def attempt() -> int | _Retry:
            sink.seek(0)
            sink.truncate()
            timeout = aiohttp.ClientTimeout(total=self._policy.download_timeout_s)
            try:
                async with self._session.get(url, headers=headers, allow_redirects=False,
                                             timeout=timeout) as resp:
                    if resp.status == 200:  # served by the API itself
                        return await _stream(resp, sink, max_bytes, url)
                    raw = await resp.read()
                    status, resp_headers = resp.status, resp.headers
                    location = resp.headers.get("Location")
                if status in _REDIRECTS and location:
                    target = urljoin(url, location)
                    # verbatim: re-quoting a signed URL's query breaks its signature
                    async with self._session.get(URL(target, encoded=True),
                                                 headers=self._anonymous,
                                                 allow_redirects=True, max_redirects=5,
                                                 timeout=timeout) as blob:
                        if blob.status == 200:
                            return await _stream(blob, sink, max_bytes, target)
                        await blob.read()
                        where = f"the download from {origin(target)}"
                        if blob.status >= 500 or blob.status == 429:
                            return _Retry(f"{where}: HTTP {blob.status}",
                                          _server_wait(blob.headers, time.time()))
                        raise ApiError(f"{where}: HTTP {blob.status}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                return _Retry(_failure("GET", url, exc), None)
            if status in _REDIRECTS:
                raise ApiError(f"GET {path_of(url)}: HTTP {status} without a Location", status)
            return _classify("GET", url, status, resp_headers, _json(raw))

        return await self._retrying(attempt, retry_ambiguous=True)

    # ------------------------------------------------------------ machinery

    def _token_headers(self, url: str) -> dict[str, str]:
        if origin(url) != self._origin:
            raise ApiError(f"refusing to send the token to {origin(url)} (API is {self._origin})")
        return self._headers

    async def _retrying(self, attempt: Callable[[], Awaitable[T | _Retry]],
                        *, retry_ambiguous: bool) -> T:
        policy = self._policy
        for number in range(1, policy.attempts + 1):
            outcome = await attempt()
            if not isinstance(outcome, _Retry):
                return outcome
            wait = outcome.wait_s
            if wait is None:
                wait = self._backoff(number)
                if outcome.limited:
                    wait = max(wait, policy.secondary_wait_s)
            if outcome.ambiguous and not retry_ambiguous:
                raise Ambiguous(outcome.problem, wait)
            if number == policy.attempts:
                raise ApiError(f"{outcome.problem} (gave up after {number} attempts)")
            if wait > policy.max_delay_s:
                raise ApiError(f"{outcome.problem} (rate limited for another {wait:.0f} s: "
                               "not waiting)")
            await self._sleep(wait)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter, so matrix legs do not retry in lock step."""
        delay = self._policy.base_delay_s * 2 ** (attempt - 1)
        return min(delay * random.uniform(1.0, 1.25), self._policy.max_delay_s)


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(raise_for_status=False)


# ---------------------------------------------------------------- helpers


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def path_of(url: str) -> str:
    return urlsplit(url).path


def message_of(data: Any) -> str:
    """The `message` of a GitHub error answer, on one line and short."""
    message = data.get("message") if isinstance(data, dict) else None
    return " ".join(str(message).split())[:200] if message else ""


def _classify(method: str, url: str, status: int, headers: Any, data: Any) -> _Retry:
    """A non-2xx answer: a retry when GitHub says so, else ApiError."""
    message = f"{method} {path_of(url)}: HTTP {status} {message_of(data)}".rstrip()
    limited = _rate_limited(status, headers, data)
    if not (limited or status >= 500):
        raise ApiError(message, status)
    return _Retry(message, _server_wait(headers, time.time()), ambiguous=status >= 500,
                  limited=limited)


def _failure(method: str, url: str, exc: BaseException) -> str:
    return f"{method} {path_of(url)}: {type(exc).__name__} {exc}".rstrip()


async def _stream(resp: aiohttp.ClientResponse, sink: IO[bytes], max_bytes: int,
                  url: str) -> int:
    too_big = f"the download from {origin(url)} is larger than {max_bytes // 2**20} MiB"
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise ApiError(too_big)
    total = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise ApiError(too_big)
        sink.write(chunk)
    sink.flush()
    return total


def _next_link(resp: aiohttp.ClientResponse) -> str | None:
    link = resp.links.get("next")
    url = link.get("url") if link else None
    return str(url) if url is not None else None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _rate_limited(status: int, headers: Any, data: Any) -> bool:
    """429 always; 403 only with GitHub's rate-limit signs (a primary limit's
    exhausted quota, a secondary limit's Retry-After or message), because a
    plain 403 is a permission problem that retrying will not fix."""
    if status == 429:
        return True
    if status != 403:
        return False
    return (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers
            or "rate limit" in message_of(data).lower())


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
