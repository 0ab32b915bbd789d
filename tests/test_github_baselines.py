"""`baseline: auto` against a fake GitHub REST API on 127.0.0.1 (runs,
artifacts, and a download redirected to a second server standing in for the
blob store), the archive reader against hostile zips, `--baseline` with
several files and directories, and the action end to end."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadaction.cli import main as cli_main
from loadaction.demo import DemoTarget, serve_in_thread
from loadaction.errors import PlanError
from loadaction.github import baselines
from loadaction.github.api import RetryPolicy
from loadaction.github.baselines import Wanted, find_baselines, read_member
from loadaction.github.cli import load_baseline
from loadaction.github.environment import Environment
from tests.github_api import TOKEN, FakeGitHub, pull_request_event, serve_with_blobs
from tests.test_action_entrypoint import run_entrypoint
from tests.test_report_fixtures import passing_doc

PR = 7
WORKFLOW = "perf.yml"
CURRENT_RUN = "4242"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_with_blobs() as fake:
        yield fake


def results(day: int, **changes: Any) -> dict[str, Any]:
    doc = passing_doc()
    doc["started_at"] = f"2026-11-{day:02d}T03:17:00.000000+00:00"
    doc.update(changes)
    return doc


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def artifact(doc: dict[str, Any], **more: bytes) -> bytes:
    """What upload-artifact makes of `path: loadaction-results/`."""
    return zip_of({"results.json": json.dumps(doc).encode(), "report.md": b"# report\n", **more})


def environment(tmp_path: Path, github: FakeGitHub, event: str = "pull_request",
                payload: dict[str, Any] | None = None, **extra: str) -> Environment:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload if payload is not None else pull_request_event(PR)))
    return Environment.from_env({
        "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": github.repo, "GITHUB_API_URL": github.url,
        "GITHUB_RUN_ID": CURRENT_RUN,
        "GITHUB_WORKFLOW_REF": f"{github.repo}/.github/workflows/{WORKFLOW}@refs/pull/{PR}/merge",
        **extra,
    })


DEFAULT_WANTED = Wanted()
FEW_ATTEMPTS = RetryPolicy(attempts=3)


def fetch(tmp_path: Path, github: FakeGitHub, wanted: Wanted = DEFAULT_WANTED,
          sleeps: Sleeps | None = None, env: Environment | None = None,
          policy: RetryPolicy = FEW_ATTEMPTS) -> baselines.Lookup:
    return find_baselines(env or environment(tmp_path, github), TOKEN, wanted,
                          tmp_path / "baselines", policy=policy, sleep=sleeps or Sleeps())


def no_token_reached_the_blob_store(github: FakeGitHub) -> bool:
    assert github.blobs is not None and github.blobs.calls
    return all("Authorization" not in c.headers and TOKEN not in json.dumps(c.headers)
               and TOKEN not in json.dumps(c.query) for c in github.blobs.calls)


# ---------------------------------------------------------------- the lookup


def test_runs_then_artifacts_then_a_redirected_download_give_one_file_per_run(tmp_path, github):
    runs = [github.add_run(WORKFLOW, archive=artifact(results(day))) for day in (1, 2, 3)]
    found = fetch(tmp_path, github)
    newest_first = [r["id"] for r in reversed(runs)]
    assert found.found == newest_first and found.unusable == []
    assert found.directory == tmp_path / "baselines"
    assert sorted(p.name for p in found.directory.iterdir()) == sorted(
        f"baseline-{i}.json" for i in newest_first)
    assert found.lines == [(f"loadaction: baseline: 3 runs of {WORKFLOW} on main "
                            f"(runs {', '.join(map(str, newest_first))})")]

    listing = github.actions_calls()[0]
    assert listing.path == f"/repos/{github.repo}/actions/workflows/{WORKFLOW}/runs"
    assert listing.query["branch"] == "main" and listing.query["status"] == "success"
    artifacts = [c for c in github.actions_calls() if c.path.endswith("/artifacts")]
    assert [c.query["name"] for c in artifacts] == ["loadaction-results"] * 3
    downloads = [c for c in github.actions_calls() if c.path.endswith("/zip")]
    assert [c.status for c in downloads] == [302] * 3
    assert all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in github.calls)
    assert len(github.blobs.calls) == 3 and no_token_reached_the_blob_store(github)

    docs = load_baseline([found.directory])
    assert [d["started_at"][:10] for d in docs] == ["2026-11-03", "2026-11-02", "2026-11-01"]


def test_pages_are_followed_until_enough_runs_are_found(tmp_path, github):
    github.max_per_page = 2
    runs = [github.add_run(WORKFLOW, archive=artifact(results(day))) for day in range(1, 9)]
    found = fetch(tmp_path, github, Wanted(runs=5))
    assert found.found == [r["id"] for r in reversed(runs)][:5]
    listings = [c for c in github.actions_calls() if c.path.endswith("/runs")]
    assert [c.query.get("page", "1") for c in listings] == ["1", "2", "3"]  # not 4: 5 found


def test_runs_not_made_by_the_base_branch_itself_are_passed_over(tmp_path, github):
    good = github.add_run(WORKFLOW, archive=artifact(results(1)))
    github.add_run(WORKFLOW, event="pull_request", archive=artifact(results(2)))  # a fork's `main`
    github.add_run(WORKFLOW, head_repo="contributor/shop", archive=artifact(results(3)))
    github.add_run(WORKFLOW, branch="release", archive=artifact(results(4)))
    github.add_run(WORKFLOW, conclusion="failure", archive=artifact(results(5)))
    github.add_run("other.yml", archive=artifact(results(6)))
    current = github.add_run(WORKFLOW, archive=artifact(results(7)))
    env = environment(tmp_path, github, GITHUB_RUN_ID=str(current["id"]))
    found = fetch(tmp_path, github, env=env)
    assert found.found == [good["id"]] and found.unusable == []


def test_another_workflow_by_name_or_id(tmp_path, github):
    run = github.add_run("main-baseline.yml", archive=artifact(results(1)))
    found = fetch(tmp_path, github, Wanted(workflow="main-baseline.yml"))
    assert found.found == [run["id"]]
    by_id = fetch(tmp_path, github, Wanted(workflow=str(run["workflow_id"])))
    assert by_id.found == [run["id"]]


def test_a_token_without_actions_read_warns_once_and_gives_no_baseline(tmp_path, github):
    github.add_run(WORKFLOW, archive=artifact(results(1)))
    github.actions_read = False
    sleeps = Sleeps()
    found = fetch(tmp_path, github, sleeps=sleeps)
    assert found.directory is None and found.found == []
    [line] = found.lines
    assert line.startswith("::warning title=Baseline::no baseline: ")
    assert "HTTP 403 Resource not accessible by integration" in line
    assert "add `permissions: actions: read` to the job" in line
    assert sleeps.waits == [] and len(github.calls) == 1  # a refusal is not retried


def test_an_unknown_workflow_says_which_and_what_to_check(tmp_path, github):
    found = fetch(tmp_path, github, Wanted(workflow="nightly.yml"))
    [line] = found.lines
    assert line.startswith("::warning title=Baseline::")
    assert "workflow nightly.yml not found in octo-org/shop" in line
    assert "baseline-workflow" in line and "permissions: actions: read" in line


def test_no_runs_yet_is_a_notice(tmp_path, github):
    github.add_run(WORKFLOW, branch="release")
    found = fetch(tmp_path, github)
    assert found.lines == [(f"::notice title=Baseline::no successful run of {WORKFLOW} on "
                            "main yet: no baseline")]


def test_runs_without_usable_results_are_skipped_and_counted_in_one_line(tmp_path, github):
    good = [github.add_run(WORKFLOW, archive=artifact(results(d))) for d in (1, 2)]
    expired = github.add_run(WORKFLOW, archive=artifact(results(3)), expired=True)
    missing = github.add_run(WORKFLOW, archive=artifact(results(4)), artifact="coverage")
    empty = github.add_run(WORKFLOW, archive=zip_of({"report.md": b"# report"}))
    found = fetch(tmp_path, github)
    assert found.found == [good[1]["id"], good[0]["id"]]
    [line] = found.lines
    assert line == ("::notice title=Baseline::3 of 5 base-branch runs had no usable results: "
                    f"no results.json in the artifact (run {empty['id']}); "
                    f"no artifact named loadaction-results (run {missing['id']}); "
                    f"artifact expired (run {expired['id']}). "
                    f"Comparing against the other 2 ({WORKFLOW} on main).")
    downloads = [c.path for c in github.actions_calls() if c.path.endswith("/zip")]
    assert len(downloads) == 3  # the expired one is not even asked for


def test_an_artifact_that_expires_between_listing_and_download_is_skipped(tmp_path, github):
    run = github.add_run(WORKFLOW, archive=artifact(results(1)))
    github.fail("GET", r".*/actions/artifacts/\d+/zip", 410, message="Artifact has expired")
    found = fetch(tmp_path, github)
    assert found.unusable == [baselines.Unusable(run["id"], "artifact expired")]
    assert found.lines[0].startswith("::warning title=Baseline::1 of 1 base-branch runs had no "
                                     "usable results: artifact expired")


def test_documents_that_are_not_complete_results_are_skipped(tmp_path, github):
    github.add_run(WORKFLOW, archive=artifact(results(1, status="cancelled")))
    github.add_run(WORKFLOW, archive=zip_of({"results.json": b'{"schema": 99}'}))
    github.add_run(WORKFLOW, archive=zip_of({"results.json": b"\xff\xfe"}))
    github.add_run(WORKFLOW, archive=b"PK\x05\x06 not really a zip")
    found = fetch(tmp_path, github)
    reasons = [u.reason for u in found.unusable]
    assert reasons == ["the artifact is not a zip archive", "results.json is not UTF-8 text",
                       "unsupported results schema 99 (this loadaction reads schema 1)",
                       "the run did not complete (status cancelled)"]
    assert found.directory is None


def test_a_502_is_retried_then_the_lookup_succeeds(tmp_path, github):
    run = github.add_run(WORKFLOW, archive=artifact(results(1)))
    github.fail("GET", r".*/actions/workflows/.*/runs", 502, headers={"Retry-After": "0"})
    github.fail("GET", r".*/actions/runs/\d+/artifacts", 429, headers={"Retry-After": "2"})
    github.blobs.failures.append(503)  # the blob store too: a fresh URL from the API, again
    sleeps = Sleeps()
    found = fetch(tmp_path, github, sleeps=sleeps)
    assert found.found == [run["id"]] and found.unusable == []
    assert sleeps.waits[:2] == [0.0, 2.0] and len(sleeps.waits) == 3
    downloads = [c.status for c in github.actions_calls() if c.path.endswith("/zip")]
    assert downloads == [302, 302]
    assert [c.path.rsplit("/", 1)[-1] for c in github.blobs.calls] == ["500.zip", "500.zip"]
    assert no_token_reached_the_blob_store(github)


def test_a_primary_rate_limit_waits_for_its_reset(tmp_path, github):
    github.add_run(WORKFLOW, archive=artifact(results(1)))
    reset = int(time.time()) + 5
    github.fail("GET", r".*/runs", 403, message="API rate limit exceeded",
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    sleeps = Sleeps()
    found = fetch(tmp_path, github, sleeps=sleeps)
    assert len(found.found) == 1 and 4.0 <= sleeps.waits[0] <= 7.0


def test_an_api_that_keeps_failing_is_a_warning_not_a_failure(tmp_path, github):
    for _ in range(5):
        github.fail("GET", r".*/runs", 503, headers={"Retry-After": "0"})
    found = fetch(tmp_path, github)
    [line] = found.lines
    assert line.startswith("::warning title=Baseline::no baseline: ") and "gave up" in line


def test_github_api_url_is_honoured_and_pagination_elsewhere_refused(tmp_path, github):
    env = environment(tmp_path, github, GITHUB_API_URL="http://127.0.0.1:9/api/v3/")
    found = fetch(tmp_path, github, env=env, policy=RetryPolicy(attempts=1))
    [line] = found.lines
    assert f"GET /api/v3/repos/{github.repo}/actions/workflows/{WORKFLOW}/runs" in line
    assert github.calls == []  # it went to the API it was given

    github.max_per_page, github.link_host = 1, "attacker.test"
    for day in (1, 2):
        github.add_run(WORKFLOW, archive=artifact(results(day)))
    found = fetch(tmp_path, github)
    assert "refusing to send the token to http://attacker.test" in found.lines[0]
    assert len(github.calls) == 1


def test_a_lookup_that_takes_too_long_is_given_up(tmp_path, github):
    github.add_run(WORKFLOW, archive=artifact(results(1)))
    github.fail("GET", r".*/runs", 503, headers={"Retry-After": "30"})
    found = find_baselines(environment(tmp_path, github), TOKEN, Wanted(),
                           tmp_path / "baselines", sleep=asyncio.sleep, deadline_s=0.5)
    assert found.lines == [("::warning title=Baseline::no baseline: the lookup took longer "
                            "than 0.5 s")]
    assert found.directory is None


def test_without_a_pull_request_auto_means_no_baseline(tmp_path, github):
    env = environment(tmp_path, github, event="push")
    found = fetch(tmp_path, github, env=env)
    assert found.lines == [("::notice title=Baseline::baseline: auto: compares a pull request "
                            "with its base branch; this run is for push, so there is no baseline")]
    payload = pull_request_event(PR)
    del payload["pull_request"]["base"]
    found = fetch(tmp_path, github, env=environment(tmp_path, github, payload=payload))
    assert "names no base branch" in found.lines[0]
    assert github.calls == []


def test_the_base_branch_and_workflow_come_from_the_runner(tmp_path, github):
    assert environment(tmp_path, github, event="push").base_branch() is None
    payload = pull_request_event(PR)
    payload["pull_request"]["base"]["ref"] = "release/2.x"
    env = environment(tmp_path, github, event="pull_request_target", payload=payload)
    assert env.base_branch() == "release/2.x" and env.workflow_file() == WORKFLOW
    assert Environment.from_env({"GITHUB_WORKFLOW_REF": "o/r/.github/workflows/a/b.yml@x"}
                                ).workflow_file() is None
    github.add_run(WORKFLOW, branch="release/2.x", archive=artifact(results(1)))
    found = fetch(tmp_path, github, env=env)
    assert len(found.found) == 1
    assert github.actions_calls()[0].query["branch"] == "release/2.x"


def test_stale_baseline_files_of_an_earlier_run_are_removed(tmp_path, github):
    stale = tmp_path / "baselines" / "baseline-1.json"
    stale.parent.mkdir()
    stale.write_text(json.dumps(results(1)))
    run = github.add_run(WORKFLOW, archive=artifact(results(2)))
    found = fetch(tmp_path, github)
    assert [p.name for p in found.directory.iterdir()] == [f"baseline-{run['id']}.json"]


# ---------------------------------------------------------------- hostile archives


def skip_reason(archive: bytes) -> str:
    with pytest.raises(baselines._Skip) as info:
        read_member(io.BytesIO(archive))
    return str(info.value)


def test_a_zip_bomb_is_refused_without_blowing_memory(tmp_path, github):
    bomb = zip_of({"results.json": b"0" * (65 * 2**20)})  # ~64 KiB compressed
    assert len(bomb) < 2**20
    assert skip_reason(bomb) == "results.json is larger than 64 MiB"
    ratio = zip_of({"results.json": b"{" + b" " * (20 * 2**20) + b"}"})
    assert skip_reason(ratio) == "results.json expands more than 200 times: not a results document"

    # the headers lie: a small declared size over the same 65 MiB of zeros
    liar = bytearray(bomb)
    central = liar.rindex(b"PK\x01\x02")
    struct.pack_into("<I", liar, central + 24, 1000)  # uncompressed size
    struct.pack_into("<I", liar, 22, 1000)  # and in the local header
    tracemalloc.start()
    try:
        reason = skip_reason(bytes(liar))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "cannot be read" in reason or "expands more than" in reason
    assert peak < 16 * 2**20

    run = github.add_run(WORKFLOW, archive=bomb)
    found = fetch(tmp_path, github)
    assert found.unusable == [baselines.Unusable(run["id"], "results.json is larger than 64 MiB")]


@pytest.mark.parametrize("name", ["../../results.json", "/etc/results.json",
                                  "C:/results.json", "a/../../results.json",
                                  "..\\..\\results.json"])
def test_a_path_traversal_member_is_refused(tmp_path, github, name):
    archive = zip_of({name: json.dumps(results(1)).encode()})
    assert skip_reason(archive).startswith("the artifact has an unsafe file name")
    github.add_run(WORKFLOW, archive=archive)
    found = fetch(tmp_path, github)
    assert found.directory is None
    # nothing unpacked: not in the destination, nor where `..` would lead
    assert not list(tmp_path.glob("**/results.json"))
    assert not (tmp_path.parent / "results.json").exists()
    assert not (tmp_path.parent.parent / "results.json").exists()


def test_the_shallowest_results_json_is_read_and_ties_are_refused():
    top, nested = results(1), results(2)
    archive = zip_of({"loadaction-results/baselines/results.json": json.dumps(nested).encode(),
                      "loadaction-results/results.json": json.dumps(top).encode(),
                      "pr/number": b"7"})
    assert json.loads(read_member(io.BytesIO(archive))) == top
    tie = zip_of({"a/results.json": b"{}", "b/results.json": b"{}"})
    assert skip_reason(tie).startswith("several results.json in the artifact")
    stored = zip_of({"results.json": json.dumps(top).encode()}, zipfile.ZIP_STORED)
    assert json.loads(read_member(io.BytesIO(stored))) == top


# ---------------------------------------------------------------- --baseline PATH


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_baseline_takes_several_files_and_directories_newest_first(tmp_path):
    a = write(tmp_path / "a.json", results(2))
    write(tmp_path / "dir" / "x.json", results(5))
    write(tmp_path / "dir" / "y.json", results(1))
    (tmp_path / "dir" / "notes.txt").write_text("not json")
    docs = load_baseline([a, tmp_path / "dir", a])
    assert [d["started_at"][:10] for d in docs] == ["2026-11-05", "2026-11-02", "2026-11-01"]
    (tmp_path / "empty").mkdir()
    assert load_baseline([tmp_path / "empty"]) == [] and load_baseline(None) == []
    assert load_baseline(a) == [results(2)]


def test_a_bad_baseline_file_is_named_and_exits_2(tmp_path, capsys):
    write(tmp_path / "dir" / "good.json", results(1))
    (tmp_path / "dir" / "bad.json").write_text('{"schema": 1}')
    with pytest.raises(PlanError, match="bad.json"):
        load_baseline([tmp_path / "dir"])
    plan = Path(__file__).parent / "plans" / "action" / "events.yml"
    code = cli_main(["run", str(plan), "--target", "http://127.0.0.1:9",
                     "--baseline", str(tmp_path / "dir" / "good.json"),
                     "--baseline", str(tmp_path / "dir")])
    assert code == 2
    assert "bad.json" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--baseline", "auto"], "--baseline auto needs --github"),
    (["--github", "--baseline", "auto", "--baseline", "x.json"], "cannot be combined"),
    (["--baseline-runs", "21"], "must be a whole number from 1 to 20; got '21'"),
    (["--baseline-workflow", "../evil"], "must be a workflow file name"),
    (["--baseline-artifact", "a/b"], "argument --baseline-artifact: must not contain"),
])
def test_bad_baseline_flags_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "x.json", results(1))
    plan = Path(__file__).parent / "plans" / "action" / "events.yml"
    try:
        code = cli_main(["run", str(plan), "--target", "http://127.0.0.1:9", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoTarget]:
    with serve_in_thread() as target:
        yield target


def test_the_action_with_baseline_auto_compares_with_the_base_branchs_runs(tmp_path, demo,
                                                                            github):
    # main's own runs upload their results (the push job of main-baseline.yml)
    main = run_entrypoint(tmp_path / "main", demo, github, {"comment": "never"}, event="push")
    assert main.code == 0, main.stderr
    uploaded = main.workspace / "loadaction-results"
    archive = zip_of({name: (uploaded / name).read_bytes() for name in ("results.json",
                                                                          "report.md")})
    runs = [github.add_run(WORKFLOW, archive=archive) for _ in range(2)]
    github.calls.clear()

    pr = run_entrypoint(tmp_path / "pr", demo, github, {"baseline": "auto"},
                        extra_env={"GITHUB_WORKFLOW_REF":
                                   f"{github.repo}/.github/workflows/{WORKFLOW}@refs/pull/7/merge"})
    assert pr.code == 0, pr.stderr
    ids = [r["id"] for r in reversed(runs)]
    assert f"loadaction: baseline: 2 runs of {WORKFLOW} on main (runs {ids[0]}, {ids[1]})" \
        in pr.stdout
    folder = pr.workspace / "loadaction-results" / "baselines"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"baseline-{i}.json" for i in ids)
    assert "**baseline** [run of " in pr.summary and "p95 Δ" in pr.summary
    [comment] = github.on_pr(PR)
    assert "**baseline** [run of " in comment["body"]
    assert no_token_reached_the_blob_store(github)
    assert TOKEN not in pr.everything(github)
    assert not any(line.startswith("::warning") for line in pr.lines())


def test_the_action_without_actions_read_warns_and_the_gate_goes_on(tmp_path, demo, github):
    github.add_run(WORKFLOW, archive=artifact(results(1)))
    github.actions_read = False
    pr = run_entrypoint(tmp_path, demo, github, {"baseline": "auto", "baseline-runs": "3"},
                        extra_env={"GITHUB_WORKFLOW_REF":
                                   f"{github.repo}/.github/workflows/{WORKFLOW}@refs/pull/7/merge"})
    assert pr.code == 0, pr.stderr
    [warning] = [line for line in pr.lines() if line.startswith("::warning")]
    assert "permissions: actions: read" in warning
    assert "**baseline**" not in pr.summary
    assert len(github.on_pr(PR)) == 1  # the comment still goes out
    failing = run_entrypoint(tmp_path, demo, github, {"baseline": "auto", "vars": "path=/nope"},
                             extra_env={"GITHUB_WORKFLOW_REF": f"{github.repo}/.github/"
                                        f"workflows/{WORKFLOW}@refs/pull/7/merge"})
    assert failing.code == 99  # the verdict is the run's
