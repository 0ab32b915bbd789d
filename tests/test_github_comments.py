"""The sticky comment client against a fake GitHub API on 127.0.0.1: find by
marker across pages, edit in place, retry what GitHub asks us to retry, and
give up politely (never raising) on what retrying cannot fix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from loadaction.github.api import DEFAULT_RETRY, GitHubApi, RetryPolicy, new_session
from loadaction.github.comments import (
    COMMENT_LIMIT,
    Failed,
    Posted,
    Skipped,
    comment_body,
    key_problem,
    marker,
    report_budget,
    upsert_comment,
)
from tests.github_api import FakeGitHub, serve

PR = 42


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve() as fake:
        yield fake


class Sleeps:
    """Records the waits instead of waiting them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def upsert(github: FakeGitHub, body: str, *, key: str = "default", create: bool = True,
           sleeps: Sleeps | None = None, policy: RetryPolicy = DEFAULT_RETRY,
           token: str | None = None, api_url: str | None = None) -> Any:
    async def go() -> Any:
        async with new_session() as session:
            api = GitHubApi(session, api_url or github.url, token or github.token, policy,
                            sleep=sleeps or Sleeps())
            return await upsert_comment(api, github.repo, PR, key, body, create=create)
    return asyncio.run(go())


def test_first_call_posts_and_the_second_edits_the_same_comment(github):
    first = upsert(github, comment_body("default", "run 1"))
    second = upsert(github, comment_body("default", "run 2"))
    assert isinstance(first, Posted) and first.created
    assert isinstance(second, Posted) and not second.created
    assert first.url == second.url
    [comment] = github.on_pr(PR)
    assert comment["body"] == f"{marker('default')}\nrun 2"
    call = github.calls[0]
    assert call.query["per_page"] == "100"
    assert call.headers["Authorization"] == f"Bearer {github.token}"
    assert call.headers["Accept"] == "application/vnd.github+json"
    assert call.headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_keys_keep_separate_comments(github):
    upsert(github, comment_body("linux", "a"), key="linux")
    upsert(github, comment_body("macos", "b"), key="macos")
    upsert(github, comment_body("linux", "c"), key="linux")
    assert sorted(c["body"] for c in github.on_pr(PR)) == [
        f"{marker('linux')}\nc", f"{marker('macos')}\nb"]


def test_the_marker_is_found_on_a_later_page(github):
    for i in range(230):
        github.add_comment(PR, f"chatter {i}")
    sticky = github.add_comment(PR, comment_body("default", "old"), login="github-actions[bot]")
    for i in range(40):
        github.add_comment(PR, f"more chatter {i}")
    outcome = upsert(github, comment_body("default", "new"))
    assert isinstance(outcome, Posted) and not outcome.created
    assert github.comments[sticky["id"]]["body"].endswith("\nnew")
    pages = [c.query.get("page", "1") for c in github.calls if c.method == "GET"]
    assert pages == ["1", "2", "3"]


def test_a_quoted_marker_is_not_our_comment(github):
    github.add_comment(PR, "> " + comment_body("default", "quoted by a reviewer"))
    outcome = upsert(github, comment_body("default", "fresh"))
    assert isinstance(outcome, Posted) and outcome.created


def test_a_copied_marker_in_someone_elses_comment_is_skipped(github):
    github.add_comment(PR, comment_body("default", "copied"), login="mallory")
    mine = github.add_comment(PR, comment_body("default", "mine"), login="github-actions[bot]")
    outcome = upsert(github, comment_body("default", "updated"))
    assert isinstance(outcome, Posted) and not outcome.created
    assert github.comments[mine["id"]]["body"].endswith("\nupdated")


def test_502_then_201_posts_once(github):
    github.fail("POST", r".*/comments", 502, headers={"Retry-After": "0"})
    sleeps = Sleeps()
    outcome = upsert(github, comment_body("default", "x"), sleeps=sleeps)
    assert isinstance(outcome, Posted) and outcome.created
    assert [c.status for c in github.writes()] == [502, 201]
    assert len(github.on_pr(PR)) == 1
    assert sleeps.waits == [0.0]


def test_a_post_that_landed_despite_a_502_is_edited_not_duplicated(github):
    github.fail("POST", r".*/comments", 502, apply=True)
    sleeps = Sleeps()
    outcome = upsert(github, comment_body("default", "x"), sleeps=sleeps)
    assert isinstance(outcome, Posted) and not outcome.created
    assert [(c.method, c.status) for c in github.writes()] == [("POST", 502), ("PATCH", 200)]
    assert len(github.on_pr(PR)) == 1
    assert 1.0 <= sleeps.waits[0] <= 1.25  # backoff: no Retry-After was given


def test_429_and_rate_limited_403_wait_as_told(github):
    github.fail("GET", r".*/comments", 429, headers={"Retry-After": "2"})
    reset = int(time.time()) + 5
    github.fail("GET", r".*/comments", 403, message="API rate limit exceeded",
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    sleeps = Sleeps()
    outcome = upsert(github, comment_body("default", "x"), sleeps=sleeps)
    assert isinstance(outcome, Posted)
    assert sleeps.waits[0] == 2.0
    assert 4.0 <= sleeps.waits[1] <= 7.0


def test_a_secondary_rate_limit_without_retry_after_waits_a_minute(github):
    github.fail("POST", r".*/comments", 403,
                message="You have exceeded a secondary rate limit. Please wait a few minutes")
    sleeps = Sleeps()
    outcome = upsert(github, comment_body("default", "x"), sleeps=sleeps)
    assert isinstance(outcome, Posted) and outcome.created
    assert sleeps.waits == [60.0]
    assert len(github.on_pr(PR)) == 1


def test_a_fork_token_fails_as_forbidden_without_retrying(github):
    github.read_only = True
    sleeps = Sleeps()
    outcome = upsert(github, comment_body("default", "x"), sleeps=sleeps)
    assert isinstance(outcome, Failed) and outcome.forbidden
    assert "HTTP 403" in outcome.reason and "Resource not accessible" in outcome.reason
    assert sleeps.waits == []
    assert len(github.writes()) == 1


def test_bad_credentials_fail_without_showing_the_token(github):
    outcome = upsert(github, comment_body("default", "x"), token="ghs_wrong_token_value")
    assert isinstance(outcome, Failed) and outcome.forbidden
    assert "401" in outcome.reason and "ghs_wrong" not in outcome.reason


def test_persistent_5xx_gives_up_after_the_attempts(github):
    for _ in range(10):
        github.fail("GET", r".*/comments", 503, headers={"Retry-After": "0"})
    sleeps = Sleeps()
    outcome = upsert(github, comment_body("default", "x"), sleeps=sleeps,
                     policy=RetryPolicy(attempts=3))
    assert isinstance(outcome, Failed) and not outcome.forbidden
    assert "gave up after 3 attempts" in outcome.reason
    assert len(github.calls) == 3 and len(sleeps.waits) == 2


def test_a_long_retry_after_is_not_waited_for(github):
    github.fail("GET", r".*/comments", 429, headers={"Retry-After": "3600"})
    sleeps = Sleeps()
    outcome = upsert(github, comment_body("default", "x"), sleeps=sleeps)
    assert isinstance(outcome, Failed) and "not waiting" in outcome.reason
    assert sleeps.waits == []


def test_update_only_mode_does_not_create(github):
    assert isinstance(upsert(github, comment_body("default", "x"), create=False), Skipped)
    assert github.writes() == []
    upsert(github, comment_body("default", "x"))
    outcome = upsert(github, comment_body("default", "passing now"), create=False)
    assert isinstance(outcome, Posted) and not outcome.created


def test_pagination_links_to_another_host_are_not_followed(github):
    for i in range(101):
        github.add_comment(PR, f"chatter {i}")
    github.link_host = "attacker.test"
    outcome = upsert(github, comment_body("default", "x"))
    assert isinstance(outcome, Failed) and "refusing to send the token" in outcome.reason
    assert len(github.calls) == 1


def test_connection_refused_is_retried_then_reported():
    sleeps = Sleeps()

    async def go() -> Any:
        async with new_session() as session:
            api = GitHubApi(session, "http://127.0.0.1:9", "t0ken", RetryPolicy(attempts=2),
                            sleep=sleeps)
            return await upsert_comment(api, "o/r", PR, "default", "body")
    outcome = asyncio.run(go())
    assert isinstance(outcome, Failed) and "gave up after 2 attempts" in outcome.reason
    assert len(sleeps.waits) == 1


@pytest.mark.parametrize("key, ok", [
    ("default", True), ("linux / py3.11", True), ("a" * 100, True), ("", False), ("a--b", False),
    ("x>y", False), ("line\nbreak", False), ("a" * 101, False),
])
def test_comment_keys_must_fit_in_an_html_comment(key, ok):
    assert (key_problem(key) is None) is ok


def test_the_body_never_exceeds_githubs_limit():
    key = "matrix-leg-7"
    assert len(comment_body(key, "x" * report_budget(key))) == COMMENT_LIMIT
    with pytest.raises(ValueError):
        comment_body(key, "x" * (report_budget(key) + 1))


def test_a_copied_marker_alone_does_not_stop_us_posting_our_own(github):
    github.add_comment(PR, comment_body("default", "copied"), login="mallory")
    outcome = upsert(github, comment_body("default", "ours"))
    assert isinstance(outcome, Posted) and outcome.created
    assert [(c.method, c.status) for c in github.writes()] == [("PATCH", 403), ("POST", 201)]
