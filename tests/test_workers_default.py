"""`--workers` defaults to `auto`, or to LOADACTION_WORKERS when it is set
(the suite sets it to 1 in conftest.py; these tests take it away)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from loadaction.argtypes import WORKERS_ENV, default_workers
from loadaction.cli import main
from loadaction.errors import PlanError
from loadaction.plan import load_plan
from loadaction.plan.model import Limits
from loadaction.workers import launch
from loadaction.workers.launch import available_cores, cgroup_cpu_limit, resolve_workers

PLAN = """
    target: {url}
    scenarios:
      pervu: {{executor: per-vu-iterations, vus: 4, iterations: 3, exec: f}}
    flows:
      f: [{{request: {{url: /ok}}}}]
"""


def test_the_default_is_auto_unless_the_environment_names_one() -> None:
    assert default_workers({}) == "auto"
    assert default_workers({WORKERS_ENV: " "}) == "auto"
    assert default_workers({WORKERS_ENV: "3"}) == 3
    assert default_workers({WORKERS_ENV: "auto"}) == "auto"
    with pytest.raises(PlanError, match=f"{WORKERS_ENV}: expected a number of workers"):
        default_workers({WORKERS_ENV: "many"})


def test_a_run_without_the_flag_uses_every_usable_cpu(
        target: Any, write_plan: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_ENV)
    path = write_plan(PLAN.format(url=target.url))
    expected = resolve_workers(load_plan(path), "auto")
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["execution"]["workers"] == expected
    assert doc["scenarios"][0]["iterations"] == 12 == target.hits["/ok"]


def test_a_bad_environment_value_exits_2_in_one_line_naming_it(
        write_plan: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(WORKERS_ENV, "0")
    path = write_plan(PLAN.format(url="http://127.0.0.1:1"))
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert WORKERS_ENV in err and len(err.splitlines()) == 1


def test_auto_starts_no_worker_that_would_have_nothing_to_run(
        write_plan: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))  # an 8-CPU machine
    monkeypatch.setattr(launch, "cgroup_cpu_limit", lambda *paths: None)  # with no CPU limit
    plan = """
        target: http://127.0.0.1:1
        scenarios:
          s: {{executor: {executor}, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """
    def auto(executor: str) -> int:
        return resolve_workers(load_plan(write_plan(plan.format(executor=executor))), "auto")
    assert auto("per-vu-iterations, vus: 1, iterations: 50") == 1  # one VU: one process
    assert auto("constant-vus, vus: 3, duration: 1s") == 3
    assert auto("shared-iterations, vus: 20, iterations: 5") == 5  # five iterations to share
    assert auto("constant-arrival-rate, rate: 5, duration: 1s, preAllocatedVUs: 2, "
                "maxVUs: 6") == 6
    assert auto("ramping-vus, startVUs: 0, stages: [{duration: 1s, target: 100}]") == 8
    path = write_plan(plan.format(executor="constant-vus, vus: 50, duration: 1s"))
    assert resolve_workers(load_plan(path, limits=Limits(max_requests=4)), "auto") == 4
    assert resolve_workers(load_plan(path), 5) == 5  # an explicit count is taken as given


def _cgroup(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "proc-cgroup").write_text(proc)
    return root, tmp_path / "proc-cgroup"


@pytest.mark.parametrize("proc, files, limit", [
    # cgroup v2 (a container with --cpus 2, a pod with limits.cpu 1.5)
    ("0::/\n", {"cpu.max": "200000 100000\n"}, 2),
    ("0::/kubepods/pod1\n", {"kubepods/pod1/cpu.max": "150000 100000\n"}, 2),
    ("0::/\n", {"cpu.max": "max 100000\n"}, None),
    # cgroup v1, the controller's own hierarchy, or the container's mounted as its root
    ("4:cpu,cpuacct:/docker/abc\n", {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
                                     "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}, 3),
    ("4:cpu,cpuacct:/docker/abc\n", {"cpu,cpuacct/cpu.cfs_quota_us": "50000\n",
                                     "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 1),
    ("4:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                           "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    ("", {}, None),  # no cgroup to read
    # a limit on a parent cgroup (a pod's, a systemd slice's) holds for its children
    ("0::/kubepods/pod1/ctr\n", {"kubepods/pod1/cpu.max": "100000 100000\n",
                                 "kubepods/pod1/ctr/cpu.max": "max 100000\n"}, 1),
])
def test_a_cgroup_cpu_limit_caps_the_usable_cpus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proc: str, files: dict[str, str],
        limit: int | None) -> None:
    root, proc_file = _cgroup(tmp_path, proc, files)
    assert cgroup_cpu_limit(root, proc_file) == limit
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))  # the host's CPUs
    assert available_cores(root, proc_file) == (16 if limit is None else limit)
