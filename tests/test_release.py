"""The release: release/pin_image.py rewrites action.yml for a pushed image
(only `runs.image` changes; the result passes GitHub's action schema and
actionlint), refuses what it should, and .github/workflows/release.yml
passes actionlint and the workflow schema. The workflow's own shell steps
(reading the tag; the release commit and the tag moves) run here against
local git repositories. Building and pushing the image cannot run here: no
Docker engine, no registry.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.test_action_lint import tool

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "release" / "pin_image.py"
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
IMAGE = "ghcr.io/owner/loadaction"
DIGEST = "sha256:" + "0123456789abcdef" * 4
REF = f"docker://{IMAGE}@{DIGEST}"

_spec = importlib.util.spec_from_file_location("pin_image", SCRIPT)
assert _spec and _spec.loader
pin_image = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pin_image)


def load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def run(*args: str | Path, cwd: Path = ROOT, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=120, **kw)


def pinned(tmp_path: Path) -> Path:
    out = tmp_path / "action.yml"
    out.write_text(pin_image.pin((ROOT / "action.yml").read_text(), IMAGE, DIGEST))
    return out


# --- the rewrite -------------------------------------------------------------

def test_main_builds_the_dockerfile():
    """main keeps `image: Dockerfile`; only release commits pull an image."""
    runs = load((ROOT / "action.yml").read_text())["runs"]
    assert runs["using"] == "docker" and runs["image"] == "Dockerfile"


def test_the_rewrite_changes_runs_image_and_nothing_else(tmp_path):
    before = (ROOT / "action.yml").read_text()
    after = pinned(tmp_path).read_text()
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    assert len(changed) == 1
    assert old[changed[0]] == "  image: Dockerfile\n"
    assert new[changed[0]] == f"  image: {REF}\n"
    doc_before, doc_after = load(before), load(after)
    assert doc_after["runs"].pop("image") == REF
    doc_before["runs"].pop("image")
    assert doc_after == doc_before


def test_the_rewrite_passes_githubs_action_schema(tmp_path):
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions",
                 pinned(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rewrite_passes_actionlint_as_the_action_a_workflow_uses(tmp_path):
    """actionlint reads a local action's metadata: an input the rewritten
    action.yml does not declare is an error, one it declares is not."""
    pinned(tmp_path)
    assert run("git", "init", "-q", cwd=tmp_path).returncode == 0   # actionlint's project root
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    use = ("on: push\npermissions: {}\njobs:\n  load:\n    runs-on: ubuntu-latest\n    steps:\n"
           "      - uses: actions/checkout@v4\n      - uses: ./\n        with:\n"
           "          target: http://localhost:8080\n          profile: smoke\n")
    (workflows / "use.yml").write_text(use)
    result = run(tool("actionlint"), "-no-color", ".github/workflows/use.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (workflows / "use.yml").write_text(use + "          no-such-input: x\n")
    result = run(tool("actionlint"), "-no-color", ".github/workflows/use.yml", cwd=tmp_path)
    assert result.returncode != 0 and "no-such-input" in result.stdout, result.stdout


def test_quotes_comments_and_line_endings_are_kept():
    text = ("name: x\r\ndescription: y\r\nruns:\r\n  using: docker\r\n"
            "  image: 'Dockerfile'   # built by every job\r\n  args: [a]\r\n")
    assert pin_image.pin(text, IMAGE, DIGEST) == text.replace("'Dockerfile'", f"'{REF}'")
    text = 'runs:\n  image: "Dockerfile"\n  using: docker\n'
    assert pin_image.pin(text, IMAGE, DIGEST) == f'runs:\n  image: "{REF}"\n  using: docker\n'


@pytest.mark.parametrize("digest", [
    "sha256:abc",
    "sha256:" + "0123456789ABCDEF" * 4,          # uppercase
    "sha256:" + "0" * 63,
    "sha256:" + "0" * 65,
    "0" * 64,                                     # no algorithm
    "sha512:" + "0" * 128,
    "sha256:" + "g" * 64,
    f"{DIGEST}\n",
    "",
])
def test_a_bad_digest_is_refused(digest):
    with pytest.raises(pin_image.PinError, match="digest"):
        pin_image.pin((ROOT / "action.yml").read_text(), IMAGE, digest)


@pytest.mark.parametrize("image", [
    "ghcr.io/Owner/loadaction",                   # registry paths are lowercase
    "ghcr.io/owner/loadaction:1.2.3",             # a tag
    f"ghcr.io/owner/loadaction@{DIGEST}",         # a digest already
    "docker://ghcr.io/owner/loadaction",
    "owner/loadaction",                           # no registry
    "ghcr.io",
    "",
])
def test_a_bad_image_name_is_refused(image):
    with pytest.raises(pin_image.PinError, match="image"):
        pin_image.pin((ROOT / "action.yml").read_text(), image, DIGEST)


@pytest.mark.parametrize("runs", [
    "runs:\n  using: node24\n  main: dist/index.js\n",
    "runs:\n  using: composite\n  steps: []\n",
    "runs:\n  using: Docker\n  image: Dockerfile\n",
    "runs: docker\n",
    "",
])
def test_an_action_that_is_not_a_docker_action_is_refused(runs):
    with pytest.raises(pin_image.PinError, match="runs"):
        pin_image.pin(f"name: x\ndescription: y\n{runs}", IMAGE, DIGEST)


def test_a_release_commit_is_not_pinned_again(tmp_path):
    with pytest.raises(pin_image.PinError, match="already"):
        pin_image.pin(pinned(tmp_path).read_text(), IMAGE, DIGEST)


@pytest.mark.parametrize("runs", [
    "runs:\n  using: docker\n  image: >-\n    Dockerfile\n",
    "runs: {using: docker, image: Dockerfile}\n",
    "x: &img Dockerfile\nruns:\n  using: docker\n  image: *img\n",
    "runs:\n  using: docker\n  image: !!str Dockerfile\n",
    "runs:\n  using: docker\n  image:\n",
])
def test_an_image_it_cannot_edit_on_its_line_is_refused(runs):
    with pytest.raises(pin_image.PinError, match="runs.image"):
        pin_image.pin(f"name: x\ndescription: y\n{runs}", IMAGE, DIGEST)


def test_the_command_line(tmp_path):
    action = tmp_path / "action.yml"
    action.write_bytes((ROOT / "action.yml").read_bytes())
    out = run(sys.executable, SCRIPT, "--image", IMAGE, "--digest", DIGEST, "--output", "-",
              action)
    assert out.returncode == 0, out.stderr
    assert load(out.stdout)["runs"]["image"] == REF
    assert action.read_bytes() == (ROOT / "action.yml").read_bytes(), "- writes to stdout only"

    done = run(sys.executable, SCRIPT, "--image", IMAGE, "--digest", DIGEST, action)
    assert done.returncode == 0 and REF in done.stderr, done.stderr
    assert action.read_text() == out.stdout, "in place by default"

    again = run(sys.executable, SCRIPT, "--image", IMAGE, "--digest", DIGEST, action)
    assert again.returncode == 2 and "already" in again.stderr
    bad = run(sys.executable, SCRIPT, "--image", IMAGE, "--digest", "sha256:0", action)
    assert bad.returncode == 2 and "digest" in bad.stderr
    assert action.read_text() == out.stdout, "a refusal writes nothing"


# --- the workflow -------------------------------------------------------------

def workflow() -> dict[str, Any]:
    return load(WORKFLOW.read_text())


def step(name: str) -> dict[str, Any]:
    steps = workflow()["jobs"]["release"]["steps"]
    return next(s for s in steps if s.get("name") == name)


def test_the_release_workflow_passes_actionlint():
    result = run(tool("actionlint"), "-no-color", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_release_workflow_matches_githubs_workflow_schema():
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_release_workflow_runs_on_version_tags_with_the_least_permissions():
    wf = workflow()
    assert wf["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert wf["permissions"] == {}
    (job,) = wf["jobs"].values()
    assert job["permissions"] == {"contents": "write", "packages": "write"}


def test_third_party_actions_are_pinned_by_commit():
    uses = re.findall(r"uses: (\S+)(.*)", WORKFLOW.read_text())
    assert {u.split("@")[0] for u, _ in uses} >= {
        "docker/setup-qemu-action", "docker/setup-buildx-action", "docker/login-action",
        "docker/build-push-action", "actions/checkout"}
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", comment), f"{action}: version comment"


def test_the_workflow_builds_both_platforms_and_pins_the_pushed_digest():
    build = step("Build and push the image")
    assert build["uses"].startswith("docker/build-push-action@")
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True
    assert build["with"]["context"] == "."
    release = step("Commit the pinned action.yml and move the tags")
    assert release["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert "python release/pin_image.py" in release["run"]
    qemu = next(s for s in workflow()["jobs"]["release"]["steps"]
                if s.get("uses", "").startswith("docker/setup-qemu-action@"))
    assert "arm64" in qemu["with"]["platforms"]


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """As GitHub runs a `run:` step: bash --noprofile --norc -eo pipefail."""
    path = cwd / ".step.sh"
    path.write_text(script)
    try:
        return run("bash", "--noprofile", "--norc", "-eo", "pipefail", path, cwd=cwd,
                   env={**os.environ, **env})
    finally:
        path.unlink()


@pytest.mark.parametrize(("tag", "expected"), [
    ("v1.2.3", {"version": "1.2.3", "major": "v1", "prerelease": ""}),
    ("v10.0.0-rc.1", {"version": "10.0.0-rc.1", "major": "v10", "prerelease": "true"}),
    ("v1.2.3.4", None),
    ("vx.y.z", None),
    ("v1.2.3-", None),
])
def test_reading_the_tag(tmp_path, tag, expected):
    output = tmp_path / "output"
    output.touch()
    proc = bash(step("Read the tag")["run"], tmp_path,
                {"TAG": tag, "GITHUB_OUTPUT": str(output), "GITHUB_REPOSITORY": "Owner/LoadAction"})
    if expected is None:
        assert proc.returncode != 0 and "::error::" in proc.stdout
        return
    assert proc.returncode == 0, proc.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert outputs == {**expected, "image": "ghcr.io/owner/loadaction"}


class Origin:
    """A bare repository standing in for GitHub, and the runner's checkout of a tag."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.bare = tmp_path / "origin.git"
        self.dev = tmp_path / "dev"
        self.git(tmp_path, "init", "-q", "--bare", "-b", "main", self.bare)
        self.git(tmp_path, "clone", "-q", self.bare, self.dev)
        for path in ("action.yml", "Dockerfile", "release/pin_image.py", "requirements/action.txt"):
            (self.dev / path).parent.mkdir(parents=True, exist_ok=True)
            (self.dev / path).write_bytes((ROOT / path).read_bytes())
        self.git(self.dev, "add", ".")
        self.commit("first")
        self.git(self.dev, "push", "-q", "origin", "main")
        self.bin = tmp_path / "bin"      # `python` is this test's Python (ruamel.yaml)
        self.bin.mkdir()
        (self.bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (self.bin / "python").chmod(0o755)

    @staticmethod
    def git(cwd: Path, *args: str | Path) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
               "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
        proc = run("git", *args, cwd=cwd, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def commit(self, message: str) -> str:
        self.git(self.dev, "commit", "-q", "--allow-empty", "-m", message)
        return self.git(self.dev, "rev-parse", "HEAD")

    def tag(self, name: str, commit: str) -> None:
        self.git(self.dev, "tag", "-a", name, "-m", name, commit)
        self.git(self.dev, "push", "-q", "origin", f"refs/tags/{name}")

    def remote(self, ref: str) -> str:
        return self.git(self.bare, "rev-parse", f"{ref}^{{commit}}")

    def release(self, tag: str, sha: str, major: str, prerelease: str = "",
                digest: str = DIGEST) -> subprocess.CompletedProcess[str]:
        """The release step, in a fresh checkout of the tag as actions/checkout makes it."""
        runner = self.tmp / f"runner-{tag}"
        self.git(self.tmp, "clone", "-q", "--no-checkout", self.bare, runner)
        self.git(runner, "checkout", "-q", "--detach", sha)
        summary = self.tmp / "summary.md"
        return bash(step("Commit the pinned action.yml and move the tags")["run"], runner, {
            "TAG": tag, "GITHUB_SHA": sha, "IMAGE": IMAGE, "DIGEST": digest, "MAJOR": major,
            "PRERELEASE": prerelease, "GITHUB_STEP_SUMMARY": str(summary),
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com",
        })

    def show(self, ref: str, path: str) -> str:
        return self.git(self.bare, "show", f"{ref}:{path}")


def test_a_release_moves_its_tag_and_the_major_tag_to_a_release_commit(tmp_path):
    origin = Origin(tmp_path)
    source = origin.commit("feature")
    origin.git(origin.dev, "push", "-q", "origin", "main")
    origin.tag("v1.0.0", source)

    proc = origin.release("v1.0.0", source, "v1")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    release = origin.remote("refs/tags/v1.0.0")
    assert release != source
    assert origin.git(origin.bare, "rev-parse", f"{release}^") == source, "one commit on the tag"
    assert origin.git(origin.bare, "diff", "--name-only", source, release) == "action.yml"
    assert load(origin.show(release, "action.yml"))["runs"]["image"] == REF
    assert origin.remote("refs/tags/v1") == release
    # main is untouched, and the release commit is on no branch
    assert origin.remote("refs/heads/main") == source
    assert load(origin.show("main", "action.yml"))["runs"]["image"] == "Dockerfile"
    assert origin.git(origin.bare, "branch", "--contains", release) == ""
    assert origin.git(origin.bare, "cat-file", "-t", "refs/tags/v1.0.0") == "tag", "annotated"
    assert "v1.0.0" in (tmp_path / "summary.md").read_text()


def test_the_major_tag_stays_for_a_backport_and_a_pre_release(tmp_path):
    origin = Origin(tmp_path)
    old = origin.commit("old line")
    new = origin.commit("new line")
    origin.git(origin.dev, "push", "-q", "origin", "main")
    origin.tag("v1.1.0", new)
    assert origin.release("v1.1.0", new, "v1").returncode == 0
    v1 = origin.remote("refs/tags/v1")

    origin.tag("v1.0.1", old)
    proc = origin.release("v1.0.1", old, "v1")
    assert proc.returncode == 0, proc.stderr
    assert "v1 stays" in proc.stdout
    assert origin.git(origin.bare, "rev-parse", "refs/tags/v1.0.1^{commit}^") == old
    assert origin.remote("refs/tags/v1") == v1

    origin.tag("v2.0.0-rc.1", new)
    proc = origin.release("v2.0.0-rc.1", new, "v2", prerelease="true")
    assert proc.returncode == 0, proc.stderr
    assert origin.git(origin.bare, "rev-parse", "refs/tags/v2.0.0-rc.1^{commit}^") == new
    assert run("git", "rev-parse", "--verify", "-q", "refs/tags/v2",
               cwd=origin.bare).returncode != 0, "no v2 for a pre-release"


def test_a_tag_moved_meanwhile_is_left_alone(tmp_path):
    origin = Origin(tmp_path)
    first = origin.commit("first release")
    second = origin.commit("second")
    origin.git(origin.dev, "push", "-q", "origin", "main")
    origin.tag("v1.0.0", first)
    origin.git(origin.dev, "tag", "-f", "-a", "v1.0.0", "-m", "moved by hand", second)
    origin.git(origin.dev, "push", "-q", "-f", "origin", "refs/tags/v1.0.0")

    proc = origin.release("v1.0.0", first, "v1")
    assert proc.returncode != 0 and "no longer points" in proc.stdout
    assert origin.remote("refs/tags/v1.0.0") == second
    assert run("git", "rev-parse", "--verify", "-q", "refs/tags/v1",
               cwd=origin.bare).returncode != 0


def test_a_bad_digest_stops_the_release_before_any_commit(tmp_path):
    origin = Origin(tmp_path)
    source = origin.commit("feature")
    origin.git(origin.dev, "push", "-q", "origin", "main")
    origin.tag("v1.0.0", source)
    proc = origin.release("v1.0.0", source, "v1", digest="")
    assert proc.returncode != 0 and "digest" in proc.stderr
    assert origin.remote("refs/tags/v1.0.0") == source
