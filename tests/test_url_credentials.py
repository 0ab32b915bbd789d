"""A password inside the target URL never reaches any output or file: not
stderr, the summary, results.json (`target`, `status_reason`), the Markdown,
JUnit or text reports, `validate`, nor the GitHub step's summary, outputs and
comment. It shows as `user:***@host`."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from loadaction.cli import main
from tests.github_api import serve as serve_github
from tests.hostile import run_cli
from tests.test_action_entrypoint import run_entrypoint

PASSWORD = "Pa55-w0rd-in-the-url"


def _plan(tmp_path: Path) -> Path:
    plan = tmp_path / "plan.yml"
    plan.write_text("""
target: http://127.0.0.1:1
scenarios:
  s: {executor: shared-iterations, vus: 1, iterations: 3, exec: f}
flows:
  f: [{request: {name: ok, url: /ok}}, {check: {status: 200}}]
thresholds:
  checks: ["rate==1"]
""")
    return plan


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _every_file(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_a_url_password_shows_nowhere_in_a_run_and_its_reports(tmp_path, target, capsys):
    host = target.url.removeprefix("http://")
    url = f"http://loadtester:{PASSWORD}@{host}"
    out = tmp_path / "out"
    code = main(["run", str(_plan(tmp_path)), "--target", url, "--out", str(out)])
    assert code == 0
    seen = capsys.readouterr()
    doc = json.loads((out / "results.json").read_text())
    assert doc["plan"]["target"] == f"http://loadtester:***@{host}"
    for fmt in ("text", "md", "junit", "json"):
        assert main(["report", str(out / "results.json"), "--format", fmt]) == 0
    reports = capsys.readouterr()
    assert main(["validate", str(_plan(tmp_path)), "--target", url]) == 0
    validated = capsys.readouterr()
    everything = "\n".join([seen.out, seen.err, reports.out, reports.err, validated.out,
                            validated.err, _every_file(out)])
    assert PASSWORD not in everything
    assert "loadtester:***@" in everything


def test_an_unreachable_target_with_a_password_is_reported_masked(tmp_path):
    url = f"http://loadtester:{PASSWORD}@127.0.0.1:{_free_port()}"
    out = tmp_path / "out"
    result = run_cli(["run", str(_plan(tmp_path)), "--target", url, "--out", str(out)], cwd=tmp_path)
    assert result.code == 3
    doc = json.loads((out / "results.json").read_text())
    assert "unreachable" in doc["status_reason"] and "loadtester:***@" in doc["status_reason"]
    assert PASSWORD not in result.stdout + result.stderr + _every_file(out)
    bad = run_cli(["run", str(_plan(tmp_path)), "--target", f"ftp://loadtester:{PASSWORD}@x"],
                  cwd=tmp_path)
    assert bad.code == 2 and PASSWORD not in bad.stdout + bad.stderr


def test_the_action_masks_a_url_password_in_summary_outputs_and_comment(tmp_path):
    from loadaction.demo import serve_in_thread

    with serve_in_thread() as demo, serve_github() as github:
        host = demo.url.removeprefix("http://")
        result = run_entrypoint(tmp_path, demo, github,
                                {"target": f"http://loadtester:{PASSWORD}@{host}"})
        assert f"::add-mask::{PASSWORD}" in result.stdout
        everything = result.everything(github)
    assert result.code in (0, 99)
    assert PASSWORD not in everything
    assert "loadtester:***@" in everything
