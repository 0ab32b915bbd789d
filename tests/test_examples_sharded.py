"""Sharded runs from the user's side: the action's `shard`, `start-at` and
`mode: merge` inputs mapped to command lines the CLI accepts, a shard's step
that neither comments nor annotates budgets (the merge does), the sharded
workflow's wiring (actionlint runs on it in test_action_lint.py), and the
Kubernetes manifests checked against the Kubernetes JSON schemas (vendored
in tests/schemas/k8s/, see its README)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from loadaction.argtypes import execution_from_args
from loadaction.cli import build_parser
from loadaction.errors import ExitCode
from loadaction.github.action import InputError, invocation
from loadaction.github.environment import Environment
from loadaction.github.step import GitHubOptions, GitHubStep
from loadaction.plan import load_plan
from loadaction.report import render
from loadaction.report.shard import shard_label
from tests.github_api import TOKEN, serve
from tests.test_action_lint import tool
from tests.test_github_outputs import parse_outputs
from tests.test_report_fixtures import make_doc

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = Path("/app/scenarios/ticketing.yml")
K8S = ROOT / "examples" / "kubernetes"
SCHEMAS = ROOT / "tests" / "schemas" / "k8s"
START = "2026-12-01T19:00:00Z"
PR = 12


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


# ---------------------------------------------------------------- action inputs


def test_a_shard_runs_its_share_at_the_start_and_neither_comments_nor_gates():
    call = invocation({"INPUT_TARGET": "https://x.test", "INPUT_SHARD": "2/4",
                       "INPUT_START-AT": START, "INPUT_COMMENT": "always",
                       "INPUT_FAIL-ON-VIOLATION": "true"}, BUNDLED)
    assert call.argv == [
        "run", str(BUNDLED), "--github", "--target", "https://x.test",
        "--out", "loadaction-results", "--profile", "pr", "--shard", "2/4",
        "--start-at", START, "--comment", "never", "--comment-key", "default",
        "--no-fail-on-violation",
    ]
    args = build_parser().parse_args(call.argv)
    assert str(args.shard[0]) == "1/4:1/2" and args.start_at.isoformat() == "2026-12-01T19:00:00+00:00"
    assert args.comment == "never" and not args.fail_on_violation


def test_start_at_alone_keeps_the_step_s_comment_and_gate():
    call = invocation({"INPUT_TARGET": "https://x.test", "INPUT_START_AT": START}, BUNDLED)
    assert call.argv[-6:] == ["--start-at", START, "--comment", "always",
                              "--comment-key", "default"]


@pytest.mark.parametrize("env, message", [
    ({"INPUT_SHARD": "0/4"}, "input 'shard' must be I/N with 1 <= I <= N"),
    ({"INPUT_SHARD": "5/4"}, "input 'shard' must be I/N"),
    ({"INPUT_SHARD": "2 of 4"}, "input 'shard' must be I/N"),
    ({"INPUT_START-AT": "2026-12-01T19:00:00"}, "input 'start-at': '2026-12-01T19:00:00' has "
                                                 "no timezone"),
    ({"INPUT_START-AT": "tomorrow"}, "input 'start-at': expected an RFC 3339 time"),
    ({"INPUT_MODE": "capacity", "INPUT_SCENARIO": "a", "INPUT_SHARD": "1/2"},
     "inputs 'shard' and 'start-at' are for mode run"),
    ({"INPUT_SHARD": "1/2", "INPUT_BASELINE": "auto"},
     "input 'baseline' is for the mode merge job when 'shard' is set"),
])
def test_bad_shard_inputs_name_the_input(env, message):
    with pytest.raises(InputError) as exc_info:
        invocation({"INPUT_TARGET": "https://x.test", **env}, BUNDLED)
    assert message in str(exc_info.value)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A workspace where download-artifact put four shards' results."""
    for i in range(1, 5):
        folder = tmp_path / "shards" / f"loadaction-shard-{i}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(make_doc()))  # checked at teardown
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_mode_merge_expands_globs_and_needs_no_target(workspace):
    call = invocation({"INPUT_MODE": "merge", "INPUT_MERGE-FROM": "shards/*/results.json\n",
                       "INPUT_ALLOW-PARTIAL": "true", "INPUT_COMMENT-KEY": "sharded",
                       "INPUT_BASELINE": "base.json", "INPUT_GITHUB-TOKEN": "ghs_x"}, BUNDLED)
    shards = [f"shards/loadaction-shard-{i}/results.json" for i in range(1, 5)]
    assert call.argv == [
        "merge", *shards, "--allow-partial", "--github", "--out", "loadaction-results",
        "--baseline", "base.json", "--comment", "always", "--comment-key", "sharded",
    ]
    assert call.env == {"GITHUB_TOKEN": "ghs_x"}
    args = build_parser().parse_args(call.argv)
    assert args.command == "merge" and args.allow_partial and args.github
    assert [str(p) for p in args.results] == shards


def test_mode_merge_passes_a_directory_on(workspace):
    call = invocation({"INPUT_MODE": "merge", "INPUT_MERGE_FROM": "shards"}, BUNDLED)
    assert call.argv[:2] == ["merge", "shards"] and "--allow-partial" not in call.argv


@pytest.mark.parametrize("env, message", [
    ({}, "input 'merge-from' is required with mode merge"),
    ({"INPUT_MERGE-FROM": "nowhere/*/results.json"}, "input 'merge-from': nothing matches "
                                                      "'nowhere/*/results.json'"),
    ({"INPUT_MERGE-FROM": "shards", "INPUT_SHARD": "1/4"}, "input 'shard' is not for mode merge"),
    ({"INPUT_MERGE-FROM": "shards", "INPUT_VUS": "10"}, "input 'vus' is not for mode merge"),
    ({"INPUT_MERGE-FROM": "shards", "INPUT_ALLOW-PARTIAL": "maybe"},
     "input 'allow-partial' must be true or false"),
])
def test_bad_merge_inputs_name_the_input(workspace, env, message):
    with pytest.raises(InputError) as exc_info:
        invocation({"INPUT_MODE": "merge", **env}, BUNDLED)
    assert message in str(exc_info.value)


# ---------------------------------------------------------------- a shard's step


def _shard_doc() -> dict[str, Any]:
    doc = copy.deepcopy(make_doc())  # violates budgets: a whole run's step would annotate them
    doc["execution"] = {"segment": "1/4:1/2", "sequence": "0,1/4,1/2,3/4,1", "start_at": None}
    return doc


def test_shard_labels():
    assert shard_label(_shard_doc()) == "shard 2/4 (segment 1/4:1/2 of 0,1/4,1/2,3/4,1)"
    assert shard_label({"execution": {"segment": "0:1", "sequence": "0,1"}}) is None
    assert shard_label({}) is None
    assert "share.....: shard 2/4 (segment 1/4:1/2" in render(_shard_doc(), "text")
    assert "share..." not in render(make_doc(), "text")
    odd = {"execution": {"segment": "0:1/2", "sequence": "0,1/4,1/2,1"}}
    assert shard_label(odd) == "segment 0:1/2 of 0,1/4,1/2,1"


def _after_run(tmp_path: Path, doc: dict[str, Any], github) -> tuple[list[str], str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": PR}}))
    summary = tmp_path / "summary.md"
    env = Environment.from_env({"GITHUB_EVENT_NAME": "pull_request",
                                "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": github.repo,
                                "GITHUB_API_URL": github.url, "GITHUB_STEP_SUMMARY": str(summary)})
    lines: list[str] = []
    step = GitHubStep(GitHubOptions(), env, TOKEN, write=lines.append)
    asyncio.run(step.after_run(doc, ExitCode.THRESHOLDS_FAILED))
    return lines, summary.read_text()


def test_a_shard_s_step_posts_no_comment_and_no_budget_annotations(tmp_path):
    (tmp_path / "whole").mkdir()
    (tmp_path / "shard").mkdir()
    with serve() as github:
        whole, _ = _after_run(tmp_path / "whole", make_doc(), github)
        assert len(github.writes()) == 1  # the same step on the whole run does comment
        assert any("title=Budget exceeded" in line for line in whole)
        lines, summary = _after_run(tmp_path / "shard", _shard_doc(), github)
        assert len(github.writes()) == 1  # nothing new
    assert not any("title=Budget exceeded" in line for line in lines)
    assert any("shard 2/4" in line and "merge job" in line for line in lines)
    assert "**shard 2/4 (segment 1/4:1/2 of 0,1/4,1/2,3/4,1)**" in summary
    assert "**shard" not in render(make_doc(), "md")


# ---------------------------------------------------------------- the workflow


def test_the_sharded_workflow_runs_four_shards_then_a_gating_merge():
    workflow = _yaml(ROOT / "examples" / "workflows" / "sharded.yml")
    jobs = workflow["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert shards == [1, 2, 3, 4] and jobs["shard"]["strategy"]["fail-fast"] is False
    [step] = [s for s in jobs["shard"]["steps"] if s.get("uses", "").startswith("your-org/")]
    assert step["with"]["shard"] == f"${{{{ matrix.shard }}}}/{len(shards)}"
    assert step["with"]["start-at"] == "${{ needs.prepare.outputs.start-at }}"
    assert "comment" not in step["with"] and "baseline" not in step["with"]
    assert jobs["prepare"]["outputs"]["start-at"] == "${{ steps.when.outputs.start-at }}"
    [when] = [s for s in jobs["prepare"]["steps"] if s.get("id") == "when"]
    assert "date -u" in when["run"] and "%Y-%m-%dT%H:%M:%SZ" in when["run"]  # RFC 3339, UTC
    [upload] = [s for s in jobs["shard"]["steps"] if s.get("uses", "").startswith(
        "actions/upload-artifact@")]
    assert upload["if"] == "always()"
    assert upload["with"]["name"] == "loadaction-shard-${{ matrix.shard }}"
    merge = jobs["merge"]
    assert merge["needs"] == "shard" and "!cancelled()" in merge["if"]
    [download] = [s for s in merge["steps"] if s.get("uses", "").startswith(
        "actions/download-artifact@")]
    assert download["with"]["pattern"] == "loadaction-shard-*"
    [gate] = [s for s in merge["steps"] if s.get("uses", "").startswith("your-org/")]
    assert gate["with"]["mode"] == "merge"
    assert gate["with"]["merge-from"] == download["with"]["path"]
    assert workflow["permissions"]["pull-requests"] == "write"


# ---------------------------------------------------------------- Kubernetes


MANIFESTS = {
    "shards-job.yaml": "job-batch-v1.json",
    "merge-job.yaml": "job-batch-v1.json",
    "pvc.yaml": "persistentvolumeclaim-v1.json",
    "plan-configmap.yaml": "configmap-v1.json",
}


def _check(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("check-jsonschema"), "--schemafile", str(SCHEMAS / schema),
                           *map(str, files)], capture_output=True, text=True, timeout=120)


def test_the_kubernetes_manifests_are_the_documented_ones():
    assert sorted(p.name for p in K8S.glob("*.yaml")) == sorted(MANIFESTS)
    readme = (K8S / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in MANIFESTS)
    assert "examples/kubernetes" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("schema", sorted(set(MANIFESTS.values())))
def test_the_kubernetes_manifests_match_the_kubernetes_schemas(schema):
    files = [K8S / name for name, s in MANIFESTS.items() if s == schema]
    result = _check(schema, *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_vendored_schemas_reject_a_broken_manifest(tmp_path):
    """Strict: a misspelt key is an error; so is a wrong type."""
    text = (K8S / "shards-job.yaml").read_text()
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(text.replace("completionMode:", "completionmode:"))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text.replace("completions: 4", "completions: four"))
    for path in (misspelt, wrong):
        result = _check("job-batch-v1.json", path)
        assert result.returncode != 0 and "validation error" in result.stdout.lower(), result.stdout


def test_the_indexed_job_runs_shard_index_plus_one_of_n_into_the_merge_s_directory():
    shards, merge = _yaml(K8S / "shards-job.yaml"), _yaml(K8S / "merge-job.yaml")
    spec = shards["spec"]
    n = spec["completions"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == n == 4
    [container] = spec["template"]["spec"]["containers"]
    command = " ".join(container["args"])
    assert f'--shard "$((JOB_COMPLETION_INDEX + 1))/{n}"' in command
    assert '--start-at "$START_AT"' in command and "--no-fail-on-violation" in command
    out = re.search(r'--out "([^"]+)"', command)[1]
    assert out == "/results/$RUN_ID/shard-$JOB_COMPLETION_INDEX"
    [merger] = merge["spec"]["template"]["spec"]["containers"]
    merged = " ".join(merger["args"])
    assert 'loadaction merge "/results/$RUN_ID"' in merged  # every shard's folder beneath it
    assert '--out "/results/$RUN_ID-merged"' in merged  # outside it: a re-merge reads no merge
    claims = {v["persistentVolumeClaim"]["claimName"] for job in (shards, merge)
              for v in job["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {_yaml(K8S / "pvc.yaml")["metadata"]["name"]}


def test_the_configmap_s_plan_loads_as_a_shard(tmp_path):
    plan_file = tmp_path / "plan.yml"
    plan_file.write_text(_yaml(K8S / "plan-configmap.yaml")["data"]["plan.yml"])
    args = build_parser().parse_args(["run", str(plan_file), "--shard", "2/4"])
    plan = load_plan(plan_file, execution=execution_from_args(args))
    assert str(plan.execution.segment) == "1/4:1/2"
    assert {t.metric for t in plan.thresholds} >= {"http_req_duration", "iterations"}


# ---------------------------------------------------------------- end to end


def _action(step: str, env: dict[str, str], workspace: Path) -> subprocess.Popen[str]:
    """The action's container command, as the runner starts it for `step`."""
    github = {"GITHUB_EVENT_NAME": "push", "GITHUB_WORKSPACE": str(workspace),
              "GITHUB_STEP_SUMMARY": str(workspace / f"{step}.summary"),
              "GITHUB_OUTPUT": str(workspace / f"{step}.output")}
    for key in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        Path(github[key]).touch()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    return subprocess.Popen([sys.executable, str(ROOT / "entrypoint.py")], cwd=workspace,
                            env={**clean, **github, **env, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_shard_steps_and_a_merge_step_through_the_action(target, tmp_path):
    """Two shard steps (start-at is left out: its wait is tested on an injected
    clock in test_start_at.py, and a deadline here would race a busy
    machine); each violates `count>=6` on its half (4 iterations) and exits 0
    all the same; the merge step judges the whole (8): `count>=6` holds,
    `count<8` fails, so it exits 99, passed=false."""
    (tmp_path / "plan.yml").write_text(
        f"target: {target.url}\nscenarios:\n"
        "  s: {executor: shared-iterations, vus: 2, iterations: 8, exec: f}\n"
        "flows:\n  f: [{request: {url: /ok}}]\n"
        "thresholds:\n  iterations: [\"count>=6\", \"count<8\"]\n")
    shards = [_action(f"shard-{i}", {"INPUT_PLAN": "plan.yml", "INPUT_TARGET": target.url, "INPUT_PROFILE": "",
                       "INPUT_SHARD": f"{i}/2",
                       "INPUT_RESULTS_DIR": f"shard-{i}"}, tmp_path) for i in (1, 2)]
    for proc in shards:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    docs = [json.loads((tmp_path / f"shard-{i}" / "results.json").read_text()) for i in (1, 2)]
    for doc, segment in zip(docs, ("0:1/2", "1/2:1")):
        assert doc["execution"]["segment"] == segment
        assert doc["scenarios"][0]["iterations"] == 4
        assert [t["verdict"] for t in doc["thresholds"]] == ["fail", "pass"]
    assert target.hits["/ok"] == 8
    merge = _action("merge", {"INPUT_MODE": "merge", "INPUT_MERGE_FROM": "shard-*/results.json",
                     "INPUT_RESULTS_DIR": "merged"}, tmp_path)
    out, err = merge.communicate(timeout=60)
    assert merge.returncode == 99, out + err
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert merged["scenarios"][0]["iterations"] == 8
    assert [t["verdict"] for t in merged["thresholds"]] == ["pass", "fail"]
    assert parse_outputs((tmp_path / "merge.output").read_text())["passed"] == "false"
    assert "**shard" not in (tmp_path / "merge.summary").read_text()
    assert "**shard 1/2" in (tmp_path / "shard-1.summary").read_text()
