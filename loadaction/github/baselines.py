"""`baseline: auto`: the results of the last successful runs on the pull
request's base branch, found and downloaded through GitHub's REST API.

1. `GET /repos/{repo}/actions/workflows/{workflow}/runs?branch={base}&status=success`
   (newest first, following `Link` pages) gives the last N runs of the
   workflow that produced the baselines; runs of pull requests (a fork's
   branch may be called `main` too), of other repositories and the current
   run are passed over.
2. `GET /repos/{repo}/actions/runs/{id}/artifacts?name={artifact}` gives each
   run's results artifact, unless it expired.
3. `GET /repos/{repo}/actions/artifacts/{id}/zip` answers 302 to a signed
   URL on another host, fetched without the token (api.py).
4. The archive is read, never extracted: only a member called `results.json`
   (the shallowest, at any depth) is decompressed, into memory and bounded,
   and an archive with an unsafe member name or an absurd compression ratio
   is refused. A document that is not a complete results document of this
   schema is passed over.

Each document found is written as `<dest>/baseline-<run id>.json`, and the
run reads that directory as it would a `--baseline DIR`. Nothing here fails
the gate: a token without `actions: read`, an unknown workflow or an API
that keeps failing is one `::warning::` and the run goes on without a
baseline; runs without usable results are counted in one line.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import zipfile
from collections.abc import Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote, urlencode

from loadaction.errors import PlanError
from loadaction.github import commands
from loadaction.github.api import (
    DEFAULT_RETRY,
    ApiError,
    GitHubApi,
    RetryPolicy,
    Sleep,
    TooManyPages,
    new_session,
)
from loadaction.github.environment import PULL_REQUEST_EVENTS, Environment, EventError
from loadaction.results.io import write_results
from loadaction.results.schema import validate_results

AUTO = "auto"
DEFAULT_ARTIFACT = "loadaction-results"
DEFAULT_RUNS = 5
MAX_RUNS = 20
MEMBER = "results.json"
FILE_PATTERN = "baseline-*.json"
PERMISSION = "permissions: actions: read"
TITLE = "Baseline"

# An artifact is streamed to a temporary file, never held in memory whole;
# the one member read is held, so it is bounded on its own.
MAX_ARCHIVE_BYTES = 256 * 2**20
MAX_MEMBER_BYTES = 64 * 2**20
MAX_MEMBERS = 10_000
# results.json deflates about 12:1; deflate cannot exceed ~1032:1
MAX_RATIO = 200
_READ = 256 * 1024
# the whole lookup, retries included: a gate is not held up for its baseline
DEADLINE_S = 300.0
_RUN_PAGES = 10
_ARTIFACT_PAGES = 5

_WORKFLOW_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml")
_ARTIFACT_FORBIDDEN = set('"\':<>|*?\\/')


# ---------------------------------------------------------------- inputs


def workflow_name(text: str) -> str:
    """`perf.yml`, `.github/workflows/perf.yml` or an id, as the API's
    `{workflow_id}` (the file name or the number)."""
    text = text.strip()
    return text.removeprefix("./").removeprefix(".github/workflows/")


def workflow_problem(text: str) -> str | None:
    """Why `text` cannot name a workflow, or None."""
    name = workflow_name(text)
    if name.isdigit() and int(name) > 0:
        return None
    if _WORKFLOW_FILE.fullmatch(name):
        return None
    return "must be a workflow file name (perf.yml) or a workflow id"


def artifact_problem(name: str) -> str | None:
    """Why `name` cannot be an artifact's name (upload-artifact's rules), or None."""
    if not name.strip():
        return "must not be empty"
    if len(name) > 256:
        return "must be at most 256 characters"
    if any(c in _ARTIFACT_FORBIDDEN for c in name) or not name.isprintable():
        return "must not contain \" ' : < > | * ? \\ / or control characters"
    return None


def runs_problem(text: str) -> str | None:
    if text.isdigit() and 1 <= int(text) <= MAX_RUNS:
        return None
    return f"must be a whole number from 1 to {MAX_RUNS}"


@dataclass(frozen=True, slots=True)
class Wanted:
    """Which runs' results to fetch."""

    workflow: str | None = None  # None: the running workflow's file
    artifact: str = DEFAULT_ARTIFACT
    runs: int = DEFAULT_RUNS


# ---------------------------------------------------------------- outcome


@dataclass(frozen=True, slots=True)
class Unusable:
    run_id: int
    reason: str


@dataclass
class Lookup:
    """What the lookup found and what the step's log should say about it."""

    directory: Path | None = None  # holds baseline-<run id>.json; None: nothing found
    found: list[int] = field(default_factory=list)  # run ids, newest first
    unusable: list[Unusable] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


class _Skip(Exception):
    """This run has no usable results; the message says why."""


class _NoBaseline(Exception):
    """The whole lookup ends without a baseline; the message is the warning."""


# ---------------------------------------------------------------- the lookup


def find_baselines(environment: Environment, token: str | None, wanted: Wanted, dest: Path,
                   *, policy: RetryPolicy = DEFAULT_RETRY, sleep: Sleep = asyncio.sleep,
                   deadline_s: float = DEADLINE_S) -> Lookup:
    """Find, fetch and write the base branch's baselines into `dest`."""
    def notice(message: str) -> Lookup:
        return Lookup(lines=[commands.notice(f"baseline: auto: {message}", title=TITLE)])

    if not environment.is_pull_request:
        event = environment.event_name or "no event"
        return notice(f"compares a pull request with its base branch; this run is for "
                      f"{event}, so there is no baseline")
    try:
        branch = environment.base_branch()
    except EventError as exc:
        return notice(f"{exc}: no baseline")
    if branch is None:
        return notice("the event payload names no base branch (pull_request.base.ref): "
                      "no baseline")
    if not environment.repository:
        return notice("GITHUB_REPOSITORY is not set: no baseline")
    workflow = wanted.workflow or environment.workflow_file()
    if workflow is None:
        return notice("cannot tell the running workflow's file (GITHUB_WORKFLOW_REF is not "
                      "set): name it in baseline-workflow")
    if not token:
        return notice("no github-token to read the base branch's runs with: no baseline")
    return asyncio.run(_bounded(environment, token, workflow, branch, wanted, dest, policy,
                                sleep, deadline_s))


async def _bounded(environment: Environment, token: str, workflow: str, branch: str,
                   wanted: Wanted, dest: Path, policy: RetryPolicy, sleep: Sleep,
                   deadline_s: float) -> Lookup:
    try:
        return await asyncio.wait_for(
            _lookup(environment, token, workflow, branch, wanted, dest, policy, sleep),
            deadline_s)
    except TimeoutError:
        _clear(dest)
        return Lookup(lines=[commands.warning(
            f"no baseline: the lookup took longer than {deadline_s:g} s", title=TITLE)])


async def _lookup(environment: Environment, token: str, workflow: str, branch: str,
                  wanted: Wanted, dest: Path, policy: RetryPolicy, sleep: Sleep) -> Lookup:
    repo = environment.repository
    assert repo is not None
    result = Lookup()
    where = f"{workflow} on {branch}"
    _clear(dest)
    async with new_session() as session:
        api = GitHubApi(session, environment.api_url, token, policy, sleep)
        try:
            runs = await _runs(api, repo, workflow, branch, wanted.runs, environment.run_id)
            if not runs:
                result.lines.append(commands.notice(
                    f"no successful run of {where} yet: no baseline", title=TITLE))
                return result
            documents: list[tuple[int, dict[str, Any]]] = []
            for run_id in runs:
                try:
                    documents.append((run_id, await _results(api, repo, run_id,
                                                             wanted.artifact)))
                except _Skip as exc:
                    result.unusable.append(Unusable(run_id, str(exc)))
        except _NoBaseline as exc:
            result.lines.append(commands.warning(f"no baseline: {exc}", title=TITLE))
            return result
    if documents:
        result.directory = _write(dest, documents)
        result.found = [run_id for run_id, _ in documents]
    result.lines.append(_summary(workflow, branch, len(runs), result, wanted.artifact))
    return result


async def _runs(api: GitHubApi, repo: str, workflow: str, branch: str, wanted: int,
                current: str | None) -> list[int]:
    """The ids of the last `wanted` successful runs of `workflow` on `branch`,
    newest first (GitHub lists runs newest first)."""
    query = urlencode({"branch": branch, "status": "success", "exclude_pull_requests": "true",
                       "per_page": str(min(100, wanted * 2))})
    url = api.url(f"/repos/{repo}/actions/workflows/{quote(workflow, safe='')}/runs?{query}")
    ids: list[int] = []
    try:
        async with aclosing(api.pages(url, what="workflow runs", key="workflow_runs",
                                      max_pages=_RUN_PAGES)) as pages:
            async for run in pages:
                run_id = run.get("id")
                if (not isinstance(run_id, int) or isinstance(run_id, bool) or run_id in ids
                        or str(run_id) == current or not _base_branch_run(run, repo, branch)):
                    continue
                ids.append(run_id)
                if len(ids) == wanted:
                    break
    except TooManyPages:
        pass  # looked far enough back: what was found will do
    except ApiError as exc:
        if exc.status == 404:
            raise _NoBaseline(
                f"workflow {workflow} not found in {repo}, or the token may not read its "
                f"runs ({exc}); check baseline-workflow, and add `{PERMISSION}` to the "
                "job") from None
        raise _NoBaseline(_api_problem(exc)) from None
    return ids


def _base_branch_run(run: dict[str, Any], repo: str, branch: str) -> bool:
    """A run the base branch's own code made: the branch filter matches a
    fork's pull request from a branch of the same name too."""
    if run.get("event") in PULL_REQUEST_EVENTS or run.get("head_branch") != branch:
        return False
    if run.get("conclusion") not in (None, "success"):
        return False
    head = run.get("head_repository")
    name = head.get("full_name") if isinstance(head, dict) else None
    return name is None or str(name).lower() == repo.lower()


async def _results(api: GitHubApi, repo: str, run_id: int, name: str) -> dict[str, Any]:
    """Run `run_id`'s results document, or _Skip."""
    query = urlencode({"name": name, "per_page": "100"})
    url = api.url(f"/repos/{repo}/actions/runs/{run_id}/artifacts?{query}")
    try:
        artifacts = [a async for a in api.pages(url, what="artifacts", key="artifacts",
                                                max_pages=_ARTIFACT_PAGES)
                     if a.get("name") == name and isinstance(a.get("id"), int)]
    except ApiError as exc:
        raise _fatal_or_skip(exc) from None
    live = [a for a in artifacts if a.get("expired") is not True]
    if not live:
        raise _Skip("artifact expired" if artifacts else f"no artifact named {name}")
    artifact = max(live, key=lambda a: (str(a.get("created_at") or ""), a["id"]))
    size = artifact.get("size_in_bytes")
    if isinstance(size, int) and size > MAX_ARCHIVE_BYTES:
        raise _Skip(f"artifact larger than {MAX_ARCHIVE_BYTES // 2**20} MiB")
    download = api.url(f"/repos/{repo}/actions/artifacts/{artifact['id']}/zip")
    with tempfile.TemporaryFile() as archive:
        try:
            await api.download(download, archive, MAX_ARCHIVE_BYTES)
        except ApiError as exc:
            if exc.status == 410:
                raise _Skip("artifact expired") from None
            raise _fatal_or_skip(exc) from None
        data = read_member(archive)
    return _document(data, run_id)


def _fatal_or_skip(exc: ApiError) -> Exception:
    """A refusal ends the lookup (every other run would be refused too); a
    404 is this run's artifact gone; anything else, this run's failure."""
    if exc.status in (401, 403):
        return _NoBaseline(_api_problem(exc))
    if exc.status == 404:
        return _Skip("artifact not found (deleted?)")
    return _Skip(f"download failed: {exc}")


def _api_problem(exc: ApiError) -> str:
    if exc.status == 401:
        return f"the token was refused ({exc})"
    if exc.status in (403, 404):
        return (f"the token may not read the base branch's workflow runs ({exc}); add "
                f"`{PERMISSION}` to the job")
    return str(exc)


# ---------------------------------------------------------------- the archive


def read_member(archive: IO[bytes]) -> bytes:
    """The bytes of the archive's `results.json` (the shallowest one), read
    with bounds; _Skip when there is none or the archive is not safe to read.
    Nothing is written to disk, so no member name ever becomes a path."""
    try:
        archive.seek(0)
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise _Skip("the artifact is not a zip archive") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _Skip(f"the artifact has more than {MAX_MEMBERS} files")
        for info in infos:
            if not _safe_name(info.filename):
                raise _Skip(f"the artifact has an unsafe file name {info.filename[:80]!r}")
        candidates = [i for i in infos if not i.is_dir() and _parts(i.filename)[-1] == MEMBER]
        if not candidates:
            raise _Skip(f"no {MEMBER} in the artifact")
        depth = min(len(_parts(i.filename)) for i in candidates)
        shallowest = [i for i in candidates if len(_parts(i.filename)) == depth]
        if len(shallowest) > 1:
            raise _Skip(f"several {MEMBER} in the artifact: "
                        + ", ".join(sorted(i.filename for i in shallowest)[:3]))
        return _read_bounded(zf, shallowest[0])


def _parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _safe_name(name: str) -> bool:
    """No absolute paths, drive letters or `..`: names that could only be
    meant to land outside wherever an archive is unpacked."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"[A-Za-z]:", posix) or "\0" in posix:
        return False
    return ".." not in PurePosixPath(posix).parts


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    too_big = _Skip(f"{MEMBER} is larger than {MAX_MEMBER_BYTES // 2**20} MiB")
    ratio = _Skip(f"{MEMBER} expands more than {MAX_RATIO} times: not a results document")
    if info.flag_bits & 0x1:
        raise _Skip(f"{MEMBER} is encrypted")
    if info.file_size > MAX_MEMBER_BYTES:
        raise too_big
    compressed = max(info.compress_size, 1)
    if info.file_size > MAX_RATIO * compressed and info.file_size > _READ:
        raise ratio
    chunks: list[bytes] = []
    total = 0
    try:
        with zf.open(info) as member:  # the sizes in the headers may lie: count
            while chunk := member.read(_READ):
                total += len(chunk)
                if total > MAX_MEMBER_BYTES:
                    raise too_big
                if total > MAX_RATIO * compressed and total > _READ:
                    raise ratio
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError,
            ValueError) as exc:
        raise _Skip(f"{MEMBER} cannot be read from the artifact: {exc}") from None
    return b"".join(chunks)


def _document(data: bytes, run_id: int) -> dict[str, Any]:
    name = f"{MEMBER} of run {run_id}"
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Skip(f"{MEMBER} is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise _Skip(f"{MEMBER} is not valid JSON") from None
    try:
        validate_results(doc, name)
    except PlanError as exc:
        raise _Skip(exc.message.removeprefix(f"{name}: ")) from None
    status = doc.get("status")
    if status != "complete":
        raise _Skip(f"the run did not complete (status {status})")
    return doc  # type: ignore[no-any-return]


# ---------------------------------------------------------------- writing and saying


def _clear(dest: Path) -> None:
    """Older baseline files (a reused workspace) go first, so the directory
    holds this lookup's baselines only."""
    if dest.is_dir():
        for old in dest.glob(FILE_PATTERN):
            if old.is_file() or old.is_symlink():
                old.unlink()


def _write(dest: Path, documents: Iterable[tuple[int, dict[str, Any]]]) -> Path:
    """`dest/baseline-<run id>.json` for each document."""
    dest.mkdir(parents=True, exist_ok=True)
    for run_id, doc in documents:
        write_results(dest / f"baseline-{run_id}.json", doc)
    return dest


def _summary(workflow: str, branch: str, considered: int, result: Lookup,
             artifact: str) -> str:
    where = f"{workflow} on {branch}"
    found = len(result.found)
    if not result.unusable:
        plural = "s" if found != 1 else ""
        return (f"loadaction: baseline: {found} run{plural} of {where} "
                f"(run{plural} {', '.join(map(str, result.found))})")
    by_reason: dict[str, list[int]] = {}
    for item in result.unusable:
        by_reason.setdefault(item.reason, []).append(item.run_id)
    reasons = "; ".join(f"{reason} (run{'s' if len(ids) > 1 else ''} "
                        f"{', '.join(map(str, ids))})" for reason, ids in by_reason.items())
    message = (f"{len(result.unusable)} of {considered} base-branch runs had no usable "
               f"results: {reasons}")
    if found:
        return commands.notice(f"{message}. Comparing against the other {found} "
                               f"({where}).", title=TITLE)
    advice = ""
    if any(item.reason == f"no artifact named {artifact}" for item in result.unusable):
        advice = f" (upload results-dir as the artifact {artifact!r} in {workflow})"
    return commands.warning(f"{message}. No baseline{advice}.", title=TITLE)
