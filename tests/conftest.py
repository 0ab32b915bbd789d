from __future__ import annotations

import json
import os
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


DATABASE_URL_ENV = "LOADACTION_TEST_DATABASE_URL"


def postgres_url() -> str:
    """PostgreSQL tests skip locally without a server, but must not skip silently in CI."""
    url = os.environ.get(DATABASE_URL_ENV)
    missing = None
    if not url:
        missing = (f"{DATABASE_URL_ENV} is not set"
                   f" (start one with: export {DATABASE_URL_ENV}=$(.ci/postgres.sh))")
    else:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            missing = "asyncpg is not installed (pip install asyncpg)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the PostgreSQL tests cannot run: {missing}")
        pytest.skip(f"PostgreSQL tests skipped: {missing}")
    return url  # type: ignore[return-value]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else postgres_url()
