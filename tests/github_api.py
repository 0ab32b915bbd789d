"""A stand-in for GitHub's REST API on 127.0.0.1: the issue-comment and
pull-request endpoints the action uses, with pagination by `Link` headers,
token checks, a record of every call, and failures queued on purpose
(502s, 403s, 429s with small Retry-After values) so retry paths run fast.

The Actions endpoints `baseline: auto` uses answer in GitHub's documented
shapes: "List workflow runs for a workflow" (`{total_count, workflow_runs}`,
filtered by `branch` and `status`, newest first), "List workflow run
artifacts" (`{total_count, artifacts}`, filtered by `name`) and "Download an
artifact" (302 to a signed URL on a second server, `BlobStore`, that
records what reached it; 410 once the artifact expired).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Iterator
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
    # Actions: workflows by file name, runs (newest last), artifacts per run,
    # archives per artifact id, and where downloads are redirected to
    workflows: dict[str, int] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    archives: dict[int, bytes] = field(default_factory=dict)
    blobs: BlobStore | None = None
    actions_read: bool = True  # False: a token without `actions: read` (403)
    max_per_page: int = 100  # GitHub's cap; lower it to make pages

    def __post_init__(self) -> None:
        self._ids = itertools.count(1000)
        self._run_ids = itertools.count(9000)
        self._artifact_ids = itertools.count(500)
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

    def add_run(self, workflow: str = "perf.yml", *, branch: str = "main", event: str = "push",
                conclusion: str | None = "success", archive: bytes | None = None,
                artifact: str = "loadaction-results", expired: bool = False,
                head_repo: str | None = None) -> dict[str, Any]:
        """A completed run of `workflow`, newer than every run before it; with
        `archive`, an artifact named `artifact` holding those zip bytes."""
        with self._lock:
            workflow_id = self.workflows.setdefault(workflow, 161335 + len(self.workflows))
            run_id = next(self._run_ids)
            stamp = f"2026-11-{1 + len(self.runs) % 28:02d}T03:17:{len(self.runs) % 60:02d}Z"
            repo = {"id": 1296269, "full_name": head_repo or self.repo,
                    "name": (head_repo or self.repo).split("/")[1]}
            run = {
                "id": run_id, "name": "Performance", "node_id": f"WFR_{run_id}",
                "head_branch": branch, "head_sha": hashlib.sha1(str(run_id).encode()).hexdigest(),
                "path": f".github/workflows/{workflow}", "display_title": "Merge pull request",
                "run_number": len(self.runs) + 1, "event": event,
                "status": "completed" if conclusion else "in_progress",
                "conclusion": conclusion, "workflow_id": workflow_id, "run_attempt": 1,
                "url": f"{self.url}/repos/{self.repo}/actions/runs/{run_id}",
                "html_url": f"https://github.test/{self.repo}/actions/runs/{run_id}",
                "created_at": stamp, "updated_at": stamp, "run_started_at": stamp,
                "head_repository": repo,
                "repository": {"id": 1296269, "full_name": self.repo,
                               "name": self.repo.split("/")[1]},
            }
            self.runs.append(run)
            self.artifacts[run_id] = []
        if archive is not None:
            self.add_artifact(run_id, archive, name=artifact, expired=expired)
        return run

    def add_artifact(self, run_id: int, archive: bytes, *, name: str = "loadaction-results",
                     expired: bool = False) -> dict[str, Any]:
        with self._lock:
            aid = next(self._artifact_ids)
            run = next(r for r in self.runs if r["id"] == run_id)
            item = {
                "id": aid, "node_id": f"MDg6QXJ0aWZhY3Q{aid}", "name": name,
                "size_in_bytes": len(archive),
                "url": f"{self.url}/repos/{self.repo}/actions/artifacts/{aid}",
                "archive_download_url": f"{self.url}/repos/{self.repo}/actions/artifacts/{aid}/zip",
                "expired": expired, "digest": "sha256:" + hashlib.sha256(archive).hexdigest(),
                "created_at": run["created_at"], "updated_at": run["created_at"],
                "expires_at": "2027-02-01T03:17:00Z",
                "workflow_run": {"id": run_id, "repository_id": 1296269,
                                 "head_repository_id": 1296269,
                                 "head_branch": run["head_branch"], "head_sha": run["head_sha"]},
            }
            self.artifacts[run_id].append(item)
            self.archives[aid] = archive
            return item

    def actions_calls(self) -> list[Call]:
        return [c for c in self.calls if "/actions/" in c.path]

    # ------------------------------------------------------------ the app

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._auth, self._inject])
        base = f"/repos/{self.repo}"
        app.router.add_get(base + "/issues/{pr:\\d+}/comments", self._list)
        app.router.add_post(base + "/issues/{pr:\\d+}/comments", self._create)
        app.router.add_patch(base + "/issues/comments/{id:\\d+}", self._update)
        app.router.add_get(base + "/pulls/{pr:\\d+}", self._pull)
        app.router.add_get(base + "/actions/workflows/{workflow}/runs", self._workflow_runs)
        app.router.add_get(base + "/actions/runs/{run:\\d+}/artifacts", self._run_artifacts)
        app.router.add_get(base + "/actions/artifacts/{id:\\d+}/{format}", self._download)
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
        if not self.actions_read and "/actions/" in request.path:
            return web.json_response(
                {"message": "Resource not accessible by integration",
                 "documentation_url": "https://docs.github.com/rest/actions/workflow-runs"},
                status=403)
        return await handler(request)

    def _page(self, request: web.Request, items: list[Any], key: str) -> web.Response:
        """One page of `items` as `{total_count, <key>}` with GitHub's Link header."""
        per_page = min(int(request.query.get("per_page", "30")), 100, self.max_per_page)
        page = int(request.query.get("page", "1"))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(items):
            nxt = request.url.update_query(page=str(page + 1))
            last = request.url.update_query(page=str(-(-len(items) // per_page)))
            if self.link_host:
                nxt, last = nxt.with_host(self.link_host), last.with_host(self.link_host)
            headers["Link"] = f'<{nxt}>; rel="next", <{last}>; rel="last"'
        return web.json_response({"total_count": len(items), key: chunk}, headers=headers)

    async def _workflow_runs(self, request: web.Request) -> web.Response:
        workflow = request.match_info["workflow"]  # a file name or an id
        wid = self.workflows.get(workflow, int(workflow) if workflow.isdigit() else None)
        if wid not in self.workflows.values():
            return web.json_response({"message": "Not Found"}, status=404)
        runs = [r for r in reversed(self.runs) if r["workflow_id"] == wid]
        if branch := request.query.get("branch"):
            runs = [r for r in runs if r["head_branch"] == branch]
        if status := request.query.get("status"):
            field_name = "status" if status in ("completed", "in_progress", "queued") else "conclusion"
            runs = [r for r in runs if r[field_name] == status]
        if request.query.get("exclude_pull_requests") != "true":
            runs = [{**r, "pull_requests": []} for r in runs]
        return self._page(request, runs, "workflow_runs")

    async def _run_artifacts(self, request: web.Request) -> web.Response:
        run_id = int(request.match_info["run"])
        if run_id not in self.artifacts:
            return web.json_response({"message": "Not Found"}, status=404)
        items = self.artifacts[run_id]
        if name := request.query.get("name"):
            items = [a for a in items if a["name"] == name]
        return self._page(request, items, "artifacts")

    async def _download(self, request: web.Request) -> web.Response:
        aid = int(request.match_info["id"])
        artifact = next((a for items in self.artifacts.values() for a in items
                         if a["id"] == aid), None)
        if artifact is None or request.match_info["format"] != "zip":
            return web.json_response({"message": "Not Found"}, status=404)
        if artifact["expired"]:
            return web.json_response({"message": "Artifact has expired"}, status=410)
        if self.blobs is None:
            raise RuntimeError("no BlobStore to redirect downloads to")
        location = self.blobs.put(f"artifacts/{aid}.zip", self.archives[aid])
        return web.Response(status=302, headers={"Location": location})

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


@dataclass
class BlobStore:
    """The other host a download is redirected to (GitHub: a blob store with
    signed URLs valid for a minute). It wants its signature, not a token,
    and records every request so tests can check no token reached it."""

    calls: list[Call] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    failures: list[int] = field(default_factory=list)  # statuses for the next requests
    url: str = ""
    signature: str = "sv=2025-01-05&se=2026-12-01T09%3A30%3A00Z&sig=c2lnbmVk"

    def put(self, name: str, data: bytes) -> str:
        self.blobs[name] = data
        return f"{self.url}/{name}?{self.signature}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name:.+}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.method, request.path, dict(request.query),
                               dict(request.headers), None))
        if self.failures:
            return web.Response(status=self.failures.pop(0), text="<Error>Server busy</Error>")
        if request.rel_url.raw_query_string != self.signature:
            return web.Response(status=403, text="<Error>AuthenticationFailed</Error>")
        data = self.blobs.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="<Error>BlobNotFound</Error>")
        return web.Response(body=data, content_type="application/zip")


@contextmanager
def serve_app(app: web.Application, started: Callable[[str], None]) -> Iterator[None]:
    """Serve `app` on 127.0.0.1 from a thread with its own loop until the
    block ends; `started` gets the base URL before the block runs."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(app, access_log=None)

    def serve_forever() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        started(f"http://127.0.0.1:{runner.addresses[0][1]}")
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fake server did not start")
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def serve(fake: FakeGitHub | None = None) -> Iterator[FakeGitHub]:
    """Serve `fake` from a thread with its own loop until the block ends."""
    fake = fake or FakeGitHub()
    with serve_app(fake.app(), lambda url: setattr(fake, "url", url)):
        yield fake


@contextmanager
def serve_with_blobs(fake: FakeGitHub | None = None) -> Iterator[FakeGitHub]:
    """`serve`, with a BlobStore on another port (another origin) for downloads."""
    fake = fake or FakeGitHub()
    blobs = fake.blobs = fake.blobs or BlobStore()
    with serve_app(blobs.app(), lambda url: setattr(blobs, "url", url)), serve(fake):
        yield fake


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
