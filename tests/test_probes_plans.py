"""Bad `probes:` sections: each a one-line exit-2 error naming file:line,
never a traceback; and SIGINT while probing ends the run with results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadaction.cli import main
from loadaction.plan import load_plan
from loadaction.probes.plugin import dsn_host

ROOT = Path(__file__).resolve().parents[1]

HEAD = """target: http://127.0.0.1:9
secrets: [DB]
metrics: {custom_x: gauge}
scenarios:
  s: {executor: shared-iterations, vus: 1, iterations: 1, exec: f}
flows:
  f: [{request: {url: /ok}}]
probes:
"""


@pytest.mark.parametrize(("body", "line", "message"), [
    ("  app:\n    prometheus: {url: /metrics}\n    metrics: {m: up}\n    intervall: 1s\n",
     12, "unknown key 'intervall' in probe 'app'"),
    ("  app:\n    promethus: {url: /metrics}\n", 10, "unknown key 'promethus'"),
    ("  app:\n    prometheus: {url: /metrics}\n    metrics:\n      m: 'up{job=\"a\"'\n",
     12, "invalid series selector"),
    ("  app:\n    prometheus: {url: /metrics}\n    metrics:\n      m: 'up{job=~\"(\"}'\n",
     12, "bad regex"),
    ("  app:\n    prometheus: {url: /metrics}\n    metrics:\n      m: 'up{job==\"a\"}'\n",
     12, "expected a quoted value"),
    ("  app:\n    prometheus: {url: /metrics}\n    metrics:\n      http_reqs: up\n",
     12, "metric 'http_reqs' is already a built-in or custom metric"),
    ("  app:\n    prometheus: {url: /metrics}\n    metrics:\n      custom_x: up\n",
     12, "metric 'custom_x' is already"),
    ("  a:\n    command: [echo, '1']\n    metric: depth\n"
     "  b:\n    command: [echo, '2']\n    metric: depth\n", 14, "already recorded by probe 'a'"),
    ("  db:\n    postgres: {dsn: 'postgresql://u:pw1234@127.0.0.1/db'}\n", 10,
     "password is written in the plan"),
    ("  db:\n    postgres: {dsn: '{{ env.X }}:pw@'}\n", 10, "must be templated from secrets"),
    ("  db:\n    postgres: {dsn: 'postgresql://u:pw@127.0.0.1/{{ secrets.DB }}'}\n", 10,
     "password is written in the plan"),
    ("  app:\n    command: [echo, '1']\n    metric: depth\n    interval: 50ms\n", 12,
     "interval: must be at least 100ms"),
    ("  app:\n    command: [echo]\n    metric: depth\n    prometheus: {url: /m}\n", 9,
     "expected exactly one of prometheus, postgres or command"),
    ("  app:\n    command: []\n    metric: depth\n", 10, "command: expected the program"),
])
def test_bad_probe_plans_are_one_line_exit_2(tmp_path, capsys, monkeypatch, body, line, message):
    monkeypatch.setenv("DB", "postgresql://u@127.0.0.1/db")
    plan = tmp_path / "plan.yml"
    plan.write_text(HEAD + body)
    assert main(["validate", str(plan)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert f"{plan}:{line}:" in err and message in err, err


def test_a_budget_on_an_unknown_probe_metric_is_refused(tmp_path, capsys):
    plan = tmp_path / "plan.yml"
    plan.write_text(HEAD.replace("secrets: [DB]\n", "") + """  q:
    command: [echo, '1']
    metric: depth
thresholds:
  dpth: ["max<1"]
  depth: ["slope<1", "last==1", "avg<2", "min>=0", "max<1"]
""")
    assert main(["validate", str(plan)]) == 2
    assert "unknown metric 'dpth'" in capsys.readouterr().err


def test_sigint_while_probing_ends_with_results(target, tmp_path):
    plan = tmp_path / "plan.yml"
    argv = json.dumps([sys.executable, "-c", "print(1)"])
    plan.write_text(f"""
target: {target.url}
probes:
  q: {{command: {argv}, metric: depth, interval: 100ms}}
scenarios:
  s: {{executor: constant-vus, vus: 1, duration: 10m, exec: f}}
flows:
  f: [{{request: {{url: /ok}}}}, {{think: 50ms}}]
""")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadaction", "run", str(plan), "--out", str(out),
         "--progress-interval", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stderr.readline()  # a progress line: the run and its probe are under way
        assert "req/s" in line, line + proc.stderr.read()
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3 and seconds < 5.0, seconds
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "cancelled"
    assert doc["probes"]["probes"][0]["samples"] >= 1


def test_the_documented_probes_example_loads(tmp_path):
    doc = (ROOT / "docs" / "plan-format.md").read_text()
    section = doc.split("\n## Probes\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    plan_path = tmp_path / "plan.yml"
    plan_path.write_text(
        "target: http://127.0.0.1:8080\nsecrets: [METRICS_TOKEN, DATABASE_URL]\n" + example
        + "scenarios: {s: {executor: shared-iterations, exec: f}}\n"
        "flows: {f: [{request: {url: /}}]}\n")
    plan = load_plan(plan_path, env={"METRICS_TOKEN": "t0ken-value",
                                     "DATABASE_URL": "postgresql://u:pw@127.0.0.1/db"})
    assert [p.name for p in plan.probes] == ["target", "db", "queue"]
    assert [t.metric for t in plan.thresholds] == ["target_memory_bytes", "pg_connections"]


@pytest.mark.parametrize(("dsn", "host", "port"), [
    ("postgresql://u:p@DB.example.com:6543/app", "db.example.com", 6543),
    ("postgresql://u@127.0.0.1/app", "127.0.0.1", 5432),
    ("postgresql:///app?host=/var/run/postgresql", None, 5432),
    ("postgresql:///app?host=db.internal&port=5433", "db.internal", 5433),
    ("host=db.internal port=5433 dbname=app", "db.internal", 5433),
    ("dbname=app", None, 5432),
])
def test_the_dsn_host_the_allowlist_checks(dsn, host, port):
    """A local socket reaches no other machine, so it needs no allowed host."""
    assert dsn_host(dsn) == (host, port)


def test_validate_lists_the_probes(tmp_path, capsys):
    plan = tmp_path / "plan.yml"
    plan.write_text(HEAD.replace("secrets: [DB]\n", "") + """  app:
    prometheus: {url: "http://u:hunter2pw@127.0.0.1:9/metrics"}
    interval: 500ms
    metrics: {memory: process_resident_memory_bytes, pool: 'demo_db_pool_in_use{pool="a"}'}
  q:
    command: [echo, "{{ 1 + 1 }}"]
    metric: depth
""")
    assert main(["validate", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "probes: 2" in out
    assert "  app  prometheus: http://u:***@127.0.0.1:9/metrics every 0.5s (timeout 0.5s)" in out
    assert "metrics: memory, pool" in out and "hunter2pw" not in out
    assert "  q  command: echo {{ 1 + 1 }} every 1s" in out
