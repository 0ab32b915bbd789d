from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadaction.cli import main
from tests.target import Target, serve


@pytest.fixture
def target() -> Iterator[Target]:
    with serve() as t:
        yield t


@pytest.fixture
def write_plan(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "plan.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path
    return write


@pytest.fixture
def run_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, dict[str, Any]]]:
    """Run `loadaction run` in-process; returns (exit code, results document)."""
    def run(plan: Path, *args: str) -> tuple[int, dict[str, Any]]:
        out = tmp_path / "out"
        code = main(["run", str(plan), "--out", str(out), "--quiet", *args])
        results = out / "results.json"
        doc = json.loads(results.read_text()) if results.exists() else {}
        return code, doc
    return run
