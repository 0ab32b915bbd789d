"""The command probe: argv (no shell), the last non-empty stdout line as a
number; a failing command, a non-number and a timeout are counted errors."""

from __future__ import annotations

import json
import sys

import pytest


def _plan(target_url: str, code: str, *, timeout: str = "2s", budget: str = "max<100") -> str:
    argv = json.dumps([sys.executable, "-c", code])  # JSON is YAML
    return f"""
target: {target_url}
probes:
  queue:
    command: {argv}
    metric: queue_depth
    interval: 200ms
    timeout: {timeout}
thresholds:
  queue_depth: ["{budget}"]
scenarios:
  s: {{executor: constant-vus, vus: 1, duration: 800ms, exec: f}}
flows:
  f: [{{request: {{url: /ok}}}}, {{think: 100ms}}]
"""


def test_command_prints_numbers(target, write_plan, run_plan):
    plan = _plan(target.url, "print('noise'); print(); print(42.5)").replace(
        "thresholds:\n", "thresholds:\n  probe_errors: [count==0]\n")
    code, doc = run_plan(write_plan(plan))
    assert code == 0, doc["thresholds"]
    assert [t["verdict"] for t in doc["thresholds"]] == ["pass", "pass"]
    probe = doc["probes"]["probes"][0]
    assert probe["samples"] >= 2 and probe["errors"] == 0
    assert doc["metrics"]["queue_depth"]["total"]["last"] == 42.5


def test_a_budget_on_the_command_fails(target, write_plan, run_plan):
    code, doc = run_plan(write_plan(_plan(target.url, "print(420)")))
    assert code == 99 and doc["thresholds"][0]["verdict"] == "fail"


@pytest.mark.parametrize(("code", "timeout", "kind"), [
    ("import sys; print('oops', file=sys.stderr); sys.exit(3)", "2s", "command_failed"),
    ("print('many')", "2s", "not_a_number"),
    ("import time; time.sleep(30)", "150ms", "timeout"),
])
def test_command_errors(target, write_plan, run_plan, code, timeout, kind):
    plan = _plan(target.url, code, timeout=timeout).replace(
        "thresholds:\n", "thresholds:\n  \"probe_errors{probe:queue}\": [count==0]\n")
    exit_code, doc = run_plan(write_plan(plan))
    assert exit_code == 99
    assert [t["verdict"] for t in doc["thresholds"]] == ["fail", "no data"]
    probe = doc["probes"]["probes"][0]
    assert probe["samples"] == 0 and set(probe["errors_by_kind"]) == {kind}
    assert probe["errors"] >= 1 and probe["last_error"]
    if kind == "command_failed":
        assert "exit 3" in probe["last_error"] and "oops" in probe["last_error"]


def test_a_disabled_probe_records_nothing(target, write_plan, run_plan):
    plan = _plan(target.url, "print(1)").replace("    interval: 200ms",
                                                  "    interval: 200ms\n    when: \"{{ false }}\"")
    code, doc = run_plan(write_plan(plan))
    probe = doc["probes"]["probes"][0]
    assert probe["enabled"] is False and probe["samples"] == 0 and probe["errors"] == 0
    assert code == 99 and doc["thresholds"][0]["verdict"] == "no data"


def test_an_argv_that_does_not_render_is_an_error_each_interval(target, write_plan, run_plan):
    plan = _plan(target.url, "print(1)").replace(
        '"-c", "print(1)"]', '"-c", "print({{ 1 // (vars.zero | int) }})"]') + "vars: {zero: '0'}\n"
    code, doc = run_plan(write_plan(plan))
    assert code == 99 and doc["thresholds"][0]["verdict"] == "no data"
    probe = doc["probes"]["probes"][0]
    assert set(probe["errors_by_kind"]) == {"command_failed"} and probe["errors"] >= 3
    assert probe["last_error"].startswith("template:")
