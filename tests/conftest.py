from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadaction.argtypes import WORKERS_ENV
from loadaction.cli import main
from tests.target import Target, serve

# The suite's runs stay in one process unless a test asks for workers (or,
# with monkeypatch, for the default): hundreds of short runs would each start
# a worker per CPU. Set before any test, so subprocesses inherit it.
os.environ[WORKERS_ENV] = "1"


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


# ------------------------------------------- every results.json fits the schema
# After each test, every results.json under its tmp_path is checked against
# docs/results.schema.json; a mismatch fails the test, naming the file and
# the JSON path of the first problem. A test that writes broken ones on
# purpose says so with @pytest.mark.invalid_results. At the end of the
# session, whatever else the session's temporary directories hold (module-
# or session-scoped fixtures) is checked too, and a mismatch fails the run.

_checked_results: set[Path] = set()
_exempt_dirs: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "invalid_results: the test writes results.json files that are meant not "
                   "to fit docs/results.schema.json (they are not checked)")


def _results_problems(root: Path) -> list[str]:
    from loadaction.errors import PlanError
    from loadaction.results.schema import validate_results

    problems = []
    for path in sorted(root.rglob("results.json")):
        if path in _checked_results or not path.is_file():
            continue
        _checked_results.add(path)
        try:
            validate_results(json.loads(path.read_text(encoding="utf-8")), str(path))
        except (PlanError, ValueError) as exc:
            problems.append(str(exc) if isinstance(exc, PlanError) else f"{path}: {exc}")
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    checked = isinstance(tmp, Path) and item.get_closest_marker("invalid_results") is None
    if isinstance(tmp, Path) and not checked:
        _exempt_dirs.append(tmp)
    result = yield
    if checked and (problems := _results_problems(tmp)):
        pytest.fail("results.json does not fit docs/results.schema.json:\n"
                    + "\n".join(problems), pytrace=False)
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)
    if basetemp is None or not Path(basetemp).is_dir():
        return
    for exempt in _exempt_dirs:
        _checked_results.update(exempt.rglob("results.json"))
    problems = _results_problems(Path(basetemp))
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "results.json does not fit docs/results.schema.json:\n" + "\n".join(problems)
        if reporter is not None:
            reporter.write_line(text, red=True)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
