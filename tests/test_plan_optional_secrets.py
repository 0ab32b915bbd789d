"""Optional secrets: `{name: X, optional: true}` may be unset; it is then not
in `secrets`, `secrets.get('X')` is falsy, and neither run nor validate warns.
The run goes through the CLI against a real echo server, so the header the
server saw is what the template rendered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loadaction.cli import main
from loadaction.errors import PlanError
from loadaction.plan import load_plan
from tests.target import Target

PLAN = """
name: optional
target: "{target}"
secrets:
  - TOKEN
  - {{name: DATABASE_URL, optional: true}}
flows:
  once:
    - request:
        name: echo
        url: /echo
        headers:
          X-Db: "{{{{ 'with-db' if secrets.get('DATABASE_URL') else 'no-db' }}}}"
          X-Token: "{{{{ secrets.TOKEN }}}}"
    - check: {{status: 200, json: {{"$.headers.X-Db": "{expected}"}}}}
scenarios:
  once:
    executor: shared-iterations
    iterations: 1
thresholds:
  checks: ["rate==1"]
"""


def _run(plan: Path, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run through the CLI; exit 0 means the check on the echoed header held."""
    for name in ("TOKEN", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / f"out-{len(env)}"
    assert main(["run", str(plan), "--out", str(out), "--quiet"]) == 0
    text = (out / "results.json").read_text()
    assert "postgresql://u:pw@db" not in text  # a set optional secret is masked like any other
    assert "tok-secret" not in text


def test_unset_optional_secret_is_absent_and_falsy(target: Target, write_plan: Callable[..., Path],
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    plan = write_plan(PLAN.format(target=target.url, expected="no-db"))
    loaded = load_plan(plan, env={"TOKEN": "tok-secret"})
    assert dict(loaded.secrets) == {"TOKEN": "tok-secret"}
    assert loaded.warnings == ()
    validated = load_plan(plan, env={}, placeholders=True)  # validate: only TOKEN is reported unset
    assert [w.unset for w in validated.warnings] == ["TOKEN"]
    assert "DATABASE_URL" not in validated.secrets

    _run(plan, {"TOKEN": "tok-secret"}, tmp_path, monkeypatch)
    with_db = write_plan(PLAN.format(target=target.url, expected="with-db"), "with-db.yml")
    _run(with_db, {"TOKEN": "tok-secret", "DATABASE_URL": "postgresql://u:pw@db/x"}, tmp_path,
         monkeypatch)
    assert target.hits["/echo"] == 2


def test_optional_secret_reaches_templates_when_set(write_plan: Callable[..., Path]) -> None:
    plan = write_plan(PLAN.format(target="http://127.0.0.1:1", expected="x"))
    loaded = load_plan(plan, env={"TOKEN": "t", "DATABASE_URL": "postgresql://u:pw@db/x"})
    assert loaded.secrets["DATABASE_URL"] == "postgresql://u:pw@db/x"


@pytest.mark.parametrize(("item", "message"), [
    ("{name: DATABASE_URL, optional: maybe}", "secrets item optional: expected true or false"),
    ("{name: DATABASE_URL, optinal: true}", "unknown key 'optinal' in a secrets item"),
    ("{optional: true}", "missing required key 'name' in a secrets item"),
])
def test_bad_secret_items_name_file_and_line(write_plan: Callable[..., Path], item: str,
                                             message: str) -> None:
    plan = write_plan(PLAN.format(target="http://127.0.0.1:1", expected="x").replace(
        "{name: DATABASE_URL, optional: true}", item))
    with pytest.raises(PlanError) as caught:
        load_plan(plan, env={"TOKEN": "t"})
    assert message in str(caught.value)
    assert caught.value.source is not None and caught.value.source.line == 5


def test_get_of_an_undeclared_secret_is_a_plan_error(write_plan: Callable[..., Path]) -> None:
    plan = write_plan(PLAN.format(target="http://127.0.0.1:1", expected="x").replace(
        "secrets.get('DATABASE_URL')", "secrets.get('DATABASE_ULR')"))
    with pytest.raises(PlanError) as caught:
        load_plan(plan, env={"TOKEN": "t"})
    assert "'secrets.DATABASE_ULR' is not declared" in str(caught.value)
    assert caught.value.source is not None and caught.value.source.line == 12


def test_cli_exit_2_for_a_bad_item(write_plan: Callable[..., Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan(PLAN.format(target="http://127.0.0.1:1", expected="x").replace(
        "optional: true", "optional: 1"))
    assert main(["validate", str(plan)]) == 2
    err = capsys.readouterr().err
    assert f"{plan}:5" in err and "Traceback" not in err
