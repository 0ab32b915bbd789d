"""CI cannot build images, so this does what the Dockerfile does, step by
step, in a fresh venv: copy what it copies, run its pip commands with the
same pins and flags, then start its ENTRYPOINT against the demo target with
a GitHub-shaped environment. An instruction this test does not know fails
it, so the Dockerfile cannot drift away from what is tested here.

Needs the package index (pip downloads the pinned wheels): skipped locally
when the index cannot be reached, never in CI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadaction.demo import serve_in_thread
from tests.github_api import TOKEN, pull_request_event, serve
from tests.test_github_outputs import parse_outputs

ROOT = Path(__file__).resolve().parents[1]
NETWORK_TROUBLE = ("NewConnectionError", "Temporary failure in name resolution",
                   "Could not fetch URL", "Network is unreachable", "ConnectTimeoutError")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip()]


def dockerignore_allows(path: str) -> bool:
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    return any(path == a or path.startswith(a + "/") for a in allowed)


class Image:
    """The image's filesystem under `root`, and the venv standing in for its Python."""

    def __init__(self, root: Path, venv: Path) -> None:
        self.root = root
        self.python = venv / "bin" / "python"
        self.env: dict[str, str] = {}

    def path(self, image_path: str) -> str:
        return re.sub(r"(?<![\w/])/app\b", str(self.root / "app"), image_path)

    def copy(self, args: str) -> None:
        *sources, dest = shlex.split(args)
        for source in sources:
            assert dockerignore_allows(source), f".dockerignore leaves out {source}"
            src = ROOT / source
            target = Path(self.path(dest))
            if dest.endswith("/"):
                target = target / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, target)

    def run(self, args: str) -> None:
        for command in args.split("&&"):
            words = [self.path(w) for w in shlex.split(command)]
            if words[:2] == ["pip", "install"]:
                self.pip(words[1:])
            elif words[:2] == ["rm", "-rf"]:
                for victim in map(Path, words[2:]):
                    assert self.root in victim.parents, victim
                    shutil.rmtree(victim, ignore_errors=True)
            else:
                pytest.fail(f"the test does not know how to run {command.strip()!r}")

    def pip(self, args: list[str]) -> None:
        proc = subprocess.run([str(self.python), "-m", "pip", *args], capture_output=True,
                              text=True, check=False, timeout=600, env={**os.environ, **self.env})
        if proc.returncode != 0:
            output = proc.stdout[-3000:] + proc.stderr[-3000:]
            if not os.environ.get("CI") and any(t in output for t in NETWORK_TROUBLE):
                pytest.skip(f"the package index cannot be reached: {output[-300:]}")
            pytest.fail(f"pip {' '.join(args)} failed:\n{output}")


def test_installed_as_the_dockerfile_does_the_action_runs(tmp_path):
    steps = instructions((ROOT / "Dockerfile").read_text())
    kind, base = steps[0]
    assert kind == "FROM" and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert sys.version_info[:2] == (3, 11), "the image's Python is 3.11"
    assert not any(k in ("USER", "WORKDIR") for k, _ in steps), "GitHub forbids USER and WORKDIR"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    image = Image(tmp_path / "image", venv)
    entrypoint: list[str] = []
    for kind, args in steps[1:]:
        if kind == "ENV":
            image.env.update(pair.split("=", 1) for pair in shlex.split(args))
        elif kind == "COPY":
            image.copy(args)
        elif kind == "RUN":
            image.run(args)
        elif kind == "ENTRYPOINT":
            entrypoint = json.loads(args)
        else:
            pytest.fail(f"the test does not know the Dockerfile instruction {kind}")
    assert entrypoint[0] == "python", "exec form, the image's python"

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    probe = "import loadaction; print(loadaction.__file__)"
    where = subprocess.run([str(image.python), "-c", probe], cwd=workspace, capture_output=True,
                           text=True, env=image.env, check=True)
    assert str(venv) in where.stdout, "the installed package, not the source tree, is imported"

    event = tmp_path / "event.json"
    event.write_text(json.dumps(pull_request_event(3)))
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    with serve_in_thread() as demo, serve() as github:
        env = {
            **image.env, **demo.env, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "CI": "true",
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": github.repo,
            "GITHUB_API_URL": github.url, "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output),
            # the bundled plan (no `plan` input), one scenario of it, at its smallest
            "INPUT_TARGET": demo.url, "INPUT_PROFILE": "smoke",
            "INPUT_SCENARIOS": "ticket-purchase", "INPUT_GITHUB-TOKEN": TOKEN,
        }
        proc = subprocess.run([str(image.python), *map(image.path, entrypoint[1:])],
                              cwd=workspace, env=env, capture_output=True, text=True,
                              check=False, timeout=180)
        comments = github.on_pr(3)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((workspace / "loadaction-results" / "results.json").read_text())
    assert results["plan"]["name"] == "ticketing"
    assert [s["name"] for s in results["scenarios"]] == ["ticket-purchase"]
    assert parse_outputs(output.read_text())["passed"] == "true"
    assert summary.read_text().strip()
    assert len(comments) == 1
    assert TOKEN not in proc.stdout.replace(f"::add-mask::{TOKEN}", "") + proc.stderr
