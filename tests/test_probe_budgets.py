"""The bundled plan's server-side budgets against the demo target on real
PostgreSQL (LOADACTION_TEST_DATABASE_URL; CI has one, and there these tests
never skip): a healthy target passes them, `--fault leak=64` fails the
memory slope, `--fault pool=2` fails the pool budgets. Each case runs
`loadaction demo` through the CLI with the smallest selection that shows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadaction.cli import main
from tests.conftest import postgres_url

MEMORY = "target_memory_bytes"
POOL = ("target_pool_saturation", "target_pool_waits")
ALWAYS_HELD = ("target_pool_timeouts", "pg_connections_total", "pg_query_mean_ms")


def _demo(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
          ) -> tuple[int, str, dict[str, Any]]:
    url = postgres_url()
    out = tmp_path / "out"
    code = main(["demo", "--quiet", "--profile", "pr", "--database-url", url, "--out", str(out),
                 *args])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    doc = json.loads((out / "results.json").read_text())
    secret = url.split("//", 1)[1]  # the DSN, without its scheme: never printed or written
    assert secret not in output and secret not in (out / "results.json").read_text()
    return code, output, doc


def _verdicts(doc: dict[str, Any]) -> dict[str, str]:
    return {f"{t['metric']} {t['expression']}": t["verdict"] for t in doc["thresholds"]}


def _verdict(doc: dict[str, Any], metric: str) -> str:
    found = {t["verdict"] for t in doc["thresholds"] if t["metric"] == metric}
    assert len(found) == 1, (metric, _verdicts(doc))
    return found.pop()


def _failed_line(output: str, metric: str) -> bool:
    return any(line.strip().startswith("✗") and f" {metric} " in f" {line.strip()[1:].strip()} "
               for line in output.splitlines())


def test_healthy_target_holds_every_server_side_budget(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, output, doc = _demo(tmp_path, capsys, "--scenario", "ticket-purchase")
    assert code == 0, output
    for metric in (MEMORY, *POOL, *ALWAYS_HELD):
        assert _verdict(doc, metric) == "pass", (metric, _verdicts(doc))
    probes = {p["name"]: p for p in doc["probes"]["probes"]}
    assert probes["target"]["enabled"] and probes["target"]["samples"] > 0
    assert probes["db"]["enabled"] and probes["db"]["samples"] > 0
    assert probes["target"]["errors"] == probes["db"]["errors"] == 0
    # real pg_stat_activity rows (the target's warm pool) and pg_stat_statements rows
    assert doc["metrics"]["pg_connections_total"]["total"]["max"] >= 20
    statements = doc["probes"]["statements"]
    assert any("checkout_sessions" in s["query"] and s["calls"] > 0 for s in statements), statements


def test_leak_fails_the_memory_slope_budget(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, output, doc = _demo(tmp_path, capsys, "--fault", "leak=64", "--scenario",
                              "ticket-purchase")
    assert code == 99, output
    assert _verdict(doc, MEMORY) == "fail"
    assert _failed_line(output, MEMORY), output
    for metric in (*POOL, *ALWAYS_HELD):  # the leak breaks memory, nothing else
        assert _verdict(doc, metric) == "pass", (metric, _verdicts(doc))


def test_tiny_pool_fails_the_pool_budgets(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The dashboard's 20 viewers load three reads each at once: two
    connections queue them (the 2 s wait is never reached, so no 503s)."""
    code, output, doc = _demo(tmp_path, capsys, "--fault", "pool=2",
                              "--scenario", "dashboard-load", "--scenario", "dashboard-sales")
    assert code == 99, output
    for metric in POOL:
        assert _verdict(doc, metric) == "fail", (metric, _verdicts(doc))
        assert _failed_line(output, metric), output
    assert doc["metrics"]["pg_connections_total"]["total"]["max"] < 20  # 2 for the target
    for metric in ALWAYS_HELD:
        assert _verdict(doc, metric) == "pass", (metric, _verdicts(doc))
