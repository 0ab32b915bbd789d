"""CI cannot build images, so this does what the Dockerfile does, stage by
stage and step by step, each stage in a fresh venv: copy what it copies, run
its pip commands with the same pins and flags (the builder's `pip wheel`
fills its /wheels; the final stage installs from that directory, mounted as
the Dockerfile mounts it, with no index and no pip configuration), then start
its ENTRYPOINT against the demo target with a GitHub-shaped environment. An
instruction or flag this test does not know fails it, so the Dockerfile
cannot drift away from what is tested here.

It runs twice: with the index's wheels, as the amd64 build does, and with
the requirements that publish no arm64 wheel built from their sdists, as the
arm64 build does (on this machine's architecture: the build path is the same).

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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loadaction.demo import serve_in_thread
from loadaction.workers.launch import available_cores
from tests.github_api import TOKEN, pull_request_event, serve
from tests.test_github_outputs import parse_outputs

ROOT = Path(__file__).resolve().parents[1]
NETWORK_TROUBLE = ("NewConnectionError", "Temporary failure in name resolution",
                   "Could not fetch URL", "Network is unreachable", "ConnectTimeoutError")
# The pinned requirements with no Linux arm64 wheel on the index: the arm64
# build compiles these in the builder stage (README, "GitHub Action").
NO_ARM64_WHEEL = ("hdrhistogram",)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip()]


@dataclass
class Stage:
    base: str
    name: str
    steps: list[tuple[str, str]] = field(default_factory=list)


def stages(steps: list[tuple[str, str]]) -> list[Stage]:
    found: list[Stage] = []
    for kind, args in steps:
        if kind == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\w+))?", args, re.IGNORECASE)
            assert match, f"FROM {args}"
            found.append(Stage(match[1], match[2] or ""))
        else:
            assert found, f"{kind} before the first FROM"
            found[-1].steps.append((kind, args))
    return found


def dockerignore_allows(path: str) -> bool:
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    return any(path == a or path.startswith(a + "/") for a in allowed)


def pip_env(isolated: bool) -> dict[str, str]:
    """This process's environment; isolated: without any PIP_* variable or pip
    configuration file, so only the command's own flags say where packages come from."""
    if not isolated:
        return dict(os.environ)
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
            "PIP_CONFIG_FILE": os.devnull}


class Image:
    """One stage's filesystem under `root`, and the venv standing in for its Python."""

    def __init__(self, root: Path, venv: Path, *, isolated: bool = False,
                 pip_extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.python = venv / "bin" / "python"
        self.env: dict[str, str] = {}
        self.isolated = isolated
        self.pip_extra_env = pip_extra_env or {}
        self.mounts: dict[str, Path] = {}

    def path(self, image_path: str) -> str:
        """An absolute path in the image (alone or as `--flag=/path`) as a path under root."""
        match = re.fullmatch(r"(--[\w-]+=)?(/.*)", image_path)
        if not match:
            return image_path
        flag, path = match[1] or "", match[2]
        for target, host in self.mounts.items():
            if path == target or path.startswith(target + "/"):
                return flag + str(host) + path[len(target):]
        return flag + str(self.root) + path

    def copy(self, args: str) -> None:
        *sources, dest = shlex.split(args)
        for source in sources:
            assert not source.startswith("--"), f"the test does not know COPY {source}"
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

    def run(self, args: str, images: dict[str, Image]) -> None:
        """RUN, with its --mount=type=bind,from=STAGE flags mounted for this one step."""
        flags = []
        while args.startswith("--"):
            flag, _, args = args.partition(" ")
            flags.append(flag)
        self.mounts = {}
        for flag in flags:
            match = re.fullmatch(r"--mount=type=bind,from=(\w+),source=(/\S*),target=(/\S*)", flag)
            if not match:
                pytest.fail(f"the test does not know the RUN flag {flag!r}")
            assert match[1] in images, f"no earlier stage named {match[1]}"
            self.mounts[match[3]] = Path(images[match[1]].path(match[2]))
        try:
            for command in args.split("&&"):
                words = [self.path(w) for w in shlex.split(command)]
                if words[:2] in (["pip", "install"], ["pip", "wheel"]):
                    self.pip(words[1:])
                elif words[:2] == ["rm", "-rf"]:
                    for victim in map(Path, words[2:]):
                        assert self.root in victim.parents, victim
                        shutil.rmtree(victim, ignore_errors=True)
                else:
                    pytest.fail(f"the test does not know how to run {command.strip()!r}")
        finally:
            self.mounts = {}

    def pip(self, args: list[str]) -> None:
        env = {**pip_env(self.isolated), **self.env, **self.pip_extra_env}
        proc = subprocess.run([str(self.python), "-m", "pip", *args], capture_output=True,
                              text=True, check=False, timeout=600, env=env)
        if proc.returncode != 0:
            output = proc.stdout[-3000:] + proc.stderr[-3000:]
            if not os.environ.get("CI") and any(t in output for t in NETWORK_TROUBLE):
                pytest.skip(f"the package index cannot be reached: {output[-300:]}")
            pytest.fail(f"pip {' '.join(args)} failed:\n{output}")


def test_the_builder_and_the_image_share_python_and_debian():
    builder, final = stages(instructions((ROOT / "Dockerfile").read_text()))
    assert builder.name == "builder" and not final.name
    build_base = re.fullmatch(r"python:(3\.11\.\d+)-(\w+)", builder.base)
    final_base = re.fullmatch(r"python:(3\.11\.\d+)-slim-(\w+)", final.base)
    assert build_base and final_base, (builder.base, final.base)
    # the builder's wheels are built for the image's Python and glibc
    assert build_base.groups() == final_base.groups()
    assert sys.version_info[:2] == (3, 11), "the image's Python is 3.11"
    for stage in (builder, final):
        assert not any(k in ("USER", "WORKDIR") for k, _ in stage.steps), \
            "GitHub forbids USER and WORKDIR"
    assert not any(k == "ENTRYPOINT" for k, _ in builder.steps)
    # the image installs no package from the index and builds none itself
    final_runs = " ".join(a for k, a in final.steps if k == "RUN")
    assert "apt-get" not in final_runs and "pip wheel" not in final_runs
    for command in re.findall(r"pip install [^&]*", final_runs):
        assert "--no-index" in command, command


def test_only_the_listed_requirements_lack_an_arm64_wheel(tmp_path):
    """What the arm64 leg below builds from source is what the arm64 build will."""
    requirements = [line for line in (ROOT / "requirements/action.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    with_wheel = [r for r in requirements if r.split("==")[0].lower() not in NO_ARM64_WHEEL]
    assert len(with_wheel) == len(requirements) - len(NO_ARM64_WHEEL)
    (tmp_path / "req.txt").write_text("\n".join(with_wheel) + "\n")
    common = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--platform", "manylinux2014_aarch64", "--python-version", "3.11",
              "--implementation", "cp", "--abi", "cp311"]
    proc = subprocess.run([*common, "-d", str(tmp_path / "arm64"), "-r", str(tmp_path / "req.txt")],
                          capture_output=True, text=True, check=False, timeout=600)
    output = proc.stdout[-3000:] + proc.stderr[-3000:]
    if proc.returncode and not os.environ.get("CI") and any(t in output for t in NETWORK_TROUBLE):
        pytest.skip(f"the package index cannot be reached: {output[-300:]}")
    assert proc.returncode == 0, output
    for name in NO_ARM64_WHEEL:
        pinned = next(r for r in requirements if r.split("==")[0].lower() == name)
        proc = subprocess.run([*common, "-d", str(tmp_path / "none"), pinned],
                              capture_output=True, text=True, check=False, timeout=600)
        assert proc.returncode != 0, f"{pinned} has an arm64 wheel now: drop it from NO_ARM64_WHEEL"


@pytest.mark.parametrize("built_from_source", [(), NO_ARM64_WHEEL],
                         ids=["wheels-as-on-amd64", "sdists-built-as-on-arm64"])
def test_installed_as_the_dockerfile_does_the_action_runs(tmp_path, built_from_source):
    builder_stage, final_stage = stages(instructions((ROOT / "Dockerfile").read_text()))
    images: dict[str, Image] = {}
    entrypoint: list[str] = []
    for index, stage in enumerate((builder_stage, final_stage)):
        venv = tmp_path / f"venv{index}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        final = stage is final_stage
        extra = {} if final or not built_from_source else {"PIP_NO_BINARY": ",".join(built_from_source)}
        image = Image(tmp_path / f"stage{index}", venv, isolated=final, pip_extra_env=extra)
        for kind, args in stage.steps:
            if kind == "ENV":
                image.env.update(pair.split("=", 1) for pair in shlex.split(args))
            elif kind == "COPY":
                image.copy(args)
            elif kind == "RUN":
                image.run(args, images)
            elif kind == "ENTRYPOINT" and final:
                entrypoint = json.loads(args)
            else:
                pytest.fail(f"the test does not know the Dockerfile instruction {kind}")
        if stage.name:
            images[stage.name] = image
    assert entrypoint[0] == "python", "exec form, the image's python"

    wheels = sorted(p.name for p in (tmp_path / "stage0" / "wheels").glob("*.whl"))
    for name in built_from_source:
        # built here, so tagged for this machine only (no manylinux tag)
        assert any(re.fullmatch(rf"{name}-[\d.]+-cp311-cp311-linux_\w+\.whl", w) for w in wheels)
    if not built_from_source:
        assert not [w for w in wheels if re.search(r"-linux_\w+\.whl$", w)], wheels

    venv = tmp_path / "venv1"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    probe = "import loadaction, pyhdrh; print(loadaction.__file__)"
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
    # no `workers` input, no LOADACTION_WORKERS: the default, one process per usable CPU
    assert results["execution"]["workers"] == available_cores()
    assert parse_outputs(output.read_text())["passed"] == "true"
    assert summary.read_text().strip()
    assert len(comments) == 1
    assert TOKEN not in proc.stdout.replace(f"::add-mask::{TOKEN}", "") + proc.stderr
