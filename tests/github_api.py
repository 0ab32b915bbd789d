"""A stand-in for GitHub's REST API on 127.0.0.1: the issue-comment and
pull-request endpoints the action uses, with pagination by `Link` headers,
token checks, a record of every call, and failures queued on purpose
(502s, 403s, 429s with small Retry-After values) so retry paths run fast.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "ghs_fakeTokenForTests0123456789abcdef"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int = 0


@dataclass
class Failure:
    """Answer the next call matching `method` and `path` (a regex) with this."""

    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "fake failure"
    apply: bool = False  # carry out the call anyway (a write that landed despite the 5xx)


@dataclass
class FakeGitHub:
    repo: str = "octo-org/shop"
    token: str = TOKEN
    head_sha: str = "0" * 40
    read_only: bool = False  # a fork's token: reads work, writes get 403
    link_host: str | None = None  # put another host in pagination links
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ helpers

    def add_comment(self, pr: int, body: str, login: str = "someone") -> dict[str, Any]:
        with self._lock:
            cid = next(self._ids)
            comment = {"id": cid, "body": body, "issue": pr, "user": {"login": login},
                       "html_url": f"https://github.test/{self.repo}/pull/{pr}#issuecomment-{cid}"}
            self.comments[cid] = comment
            return comment

    def on_pr(self, pr: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["issue"] == pr]

    def fail(self, method: str, path: str, status: int, **kwargs: Any) -> None:
        self.failures.append(Failure(method, path, status, **kwargs))

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method in ("POST", "PATCH")]

    # ------------------------------------------------------------ the app

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._auth, self._inject])
        base = f"/repos/{self.repo}"
        app.router.add_get(base + "/issues/{pr:\\d+}/comments", self._list)
        app.router.add_post(base + "/issues/{pr:\\d+}/comments", self._create)
        app.router.add_patch(base + "/issues/comments/{id:\\d+}", self._update)
        app.router.add_get(base + "/pulls/{pr:\\d+}", self._pull)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        call = Call(request.method, request.path, dict(request.query), dict(request.headers), body)
        self.calls.append(call)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            call.status = exc.status
            raise
        call.status = response.status
        return response

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Bad credentials"}, status=401)
        if (request.headers.get("Accept") != "application/vnd.github+json"
                or request.headers.get("X-GitHub-Api-Version") != "2022-11-28"):
            return web.json_response({"message": "missing GitHub headers"}, status=400)
        return await handler(request)

    @web.middleware
    async def _inject(self, request: web.Request, handler: Any) -> web.StreamResponse:
        for failure in self.failures:
            if failure.method == request.method and re.fullmatch(failure.path, request.path):
                self.failures.remove(failure)
                if failure.apply:
                    await handler(request)
                return web.json_response({"message": failure.message}, status=failure.status,
                                         headers=failure.headers)
        if self.read_only and request.method != "GET":
            return web.json_response(
                {"message": "Resource not accessible by integration"}, status=403)
        return await handler(request)

    async def _list(self, request: web.Request) -> web.Response:
        pr = int(request.match_info["pr"])
        per_page = min(int(request.query.get("per_page", "30")), 100)
        page = int(request.query.get("page", "1"))
        items = sorted(self.on_pr(pr), key=lambda c: c["id"])
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(items):
            nxt = request.url.update_query(page=str(page + 1), per_page=str(per_page))
            if self.link_host:
                nxt = nxt.with_host(self.link_host)
            headers["Link"] = f'<{nxt}>; rel="next", <{request.url}>; rel="first"'
        return web.json_response(chunk, headers=headers)

    async def _create(self, request: web.Request) -> web.Response:
        body = (await request.json())["body"]
        return web.json_response(self.add_comment(int(request.match_info["pr"]), body,
                                                  "github-actions[bot]"), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        comment = self.comments.get(int(request.match_info["id"]))
        if comment is None:
            return web.json_response({"message": "Not Found"}, status=404)
        if comment["user"]["login"] != "github-actions[bot]":
            return web.json_response({"message": "Forbidden"}, status=403)
        comment["body"] = (await request.json())["body"]
        return web.json_response(comment)

    async def _pull(self, request: web.Request) -> web.Response:
        return web.json_response({"number": int(request.match_info["pr"]),
                                  "head": {"sha": self.head_sha}})


@contextmanager
def serve(fake: FakeGitHub | None = None) -> Iterator[FakeGitHub]:
    """Serve `fake` from a thread with its own loop until the block ends."""
    fake = fake or FakeGitHub()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(fake.app(), access_log=None)

    def serve_forever() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fake GitHub API did not start")
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# A real `pull_request` (opened) event payload, trimmed to the parts the action
# reads plus enough around them to look like the runner's file.
def pull_request_event(number: int, repo: str = "octo-org/shop",
                       fork: bool = False) -> dict[str, Any]:
    owner, name = repo.split("/")
    head_repo = f"contributor/{name}" if fork else repo
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{repo}/pulls/{number}",
            "id": 1942710327,
            "html_url": f"https://github.com/{repo}/pull/{number}",
            "number": number,
            "state": "open",
            "title": "Make checkout faster",
            "user": {"login": "contributor", "type": "User"},
            "head": {"label": f"{head_repo.split('/')[0]}:faster-checkout",
                     "ref": "faster-checkout", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
                     "repo": {"full_name": head_repo, "fork": fork}},
            "base": {"label": f"{owner}:main", "ref": "main",
                     "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
                     "repo": {"full_name": repo, "fork": False}},
            "draft": False,
            "merged": False,
        },
        "repository": {"id": 1296269, "name": name, "full_name": repo,
                       "owner": {"login": owner, "type": "Organization"}, "private": False},
        "sender": {"login": "contributor", "type": "User"},
    }
