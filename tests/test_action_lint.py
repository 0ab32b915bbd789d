"""The action's metadata, example workflows and Dockerfile pass the linters
GitHub users would run: check-jsonschema (GitHub's schemas, bundled with
it), actionlint and hadolint. A missing linter skips here but fails in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "examples" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    """The linter installed beside this Python (the test extra), else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        message = f"{name} is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)


def test_the_examples_are_the_five_documented_workflows():
    assert [p.name for p in WORKFLOWS] == ["fork-safe-comment.yml", "main-baseline.yml",
                                           "pr-gate.yml", "scheduled-staging.yml", "sharded.yml"]
    readme = (ROOT / "README.md").read_text()
    for path in WORKFLOWS:
        assert f"examples/workflows/{path.name}" in readme


def _yaml(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def _action_steps(workflow: dict) -> list[tuple[dict, dict]]:
    """(job, step) for each step that uses loadaction."""
    return [(job, step) for job in workflow["jobs"].values() for step in job.get("steps", [])
            if str(step.get("uses", "")).startswith("your-org/loadaction@")]


def test_the_examples_give_the_action_only_inputs_it_declares():
    inputs = set(_yaml(ROOT / "action.yml")["inputs"])
    for path in WORKFLOWS:
        for _, step in _action_steps(_yaml(path)):
            assert set(step.get("with", {})) <= inputs, (path.name, set(step["with"]) - inputs)


def test_the_pr_gate_reads_the_baselines_the_baseline_workflow_uploads():
    """baseline: auto needs `actions: read`, and the artifact its
    baseline-workflow uploads under the name baseline-artifact expects."""
    action = _yaml(ROOT / "action.yml")["inputs"]
    gate = _yaml(ROOT / "examples" / "workflows" / "pr-gate.yml")
    [(_, step)] = _action_steps(gate)
    assert step["with"]["baseline"] == "auto"
    assert gate["permissions"]["actions"] == "read"
    producer_file = step["with"]["baseline-workflow"]
    producer = _yaml(ROOT / "examples" / "workflows" / producer_file)
    assert producer["on"]["push"]["branches"] == ["main"]
    wanted = step["with"].get("baseline-artifact", action["baseline-artifact"]["default"])
    uploads = [s["with"] for job in producer["jobs"].values() for s in job["steps"]
               if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert {"name": wanted, "path": "loadaction-results/"}.items() <= uploads[0].items()
    [(_, produced)] = _action_steps(producer)
    assert produced["with"]["profile"] == step["with"]["profile"]  # like with like


def test_action_yml_matches_githubs_action_metadata_schema():
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions",
                 "action.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_workflows_match_githubs_workflow_schema():
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                 *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_workflows_pass_actionlint():
    result = run(tool("actionlint"), "-no-color", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint():
    result = run(tool("hadolint"), "--no-color", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linters_do_reject_broken_files(tmp_path):
    """So a green run above means the files are right, not that a linter ran on nothing."""
    workflow = tmp_path / "broken.yml"
    workflow.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
                        "    steps:\n      - run: echo ${{ github.nope }}\n")
    assert run(tool("actionlint"), "-no-color", str(workflow)).returncode != 0
    action = tmp_path / "action.yml"
    action.write_text("name: x\ndescription: y\nruns:\n  using: docker\n")
    assert run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions",
               str(action)).returncode != 0
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN pip install aiohttp\nWORKDIR app\n")
    assert run(tool("hadolint"), "--no-color", str(dockerfile)).returncode != 0
