"""`--workers` defaults to `auto`, or to LOADACTION_WORKERS when it is set
(the suite sets it to 1 in conftest.py; these tests take it away)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadaction.argtypes import WORKERS_ENV, default_workers
from loadaction.cli import main
from loadaction.errors import PlanError
from loadaction.plan import load_plan
from loadaction.workers.launch import resolve_workers

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
