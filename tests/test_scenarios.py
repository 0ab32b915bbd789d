"""The four bundled ticketing scenarios against the bundled demo target:
they pass on a healthy target (SQLite and PostgreSQL), and each budget
catches the fault it exists for (exit 99, naming the violated threshold)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest
import stripe
from aiohttp import web

from loadaction.cli import main
from loadaction.demo.command import PLAN
from loadaction.plan import load_plan
from loadaction.report.markdown import render_markdown
from loadaction.session import run_and_report
from tests.target import Target


def _demo(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "out"
    code = main(["demo", "--profile", "smoke", "--quiet", "--out", str(out), *args])
    return code, json.loads((out / "results.json").read_text())


def _failed(doc: dict) -> set[str]:
    """Budgets that did not hold (an optional one without data held)."""
    return {f"{t['metric']} {t['expression']}" for t in doc["thresholds"]
            if t["verdict"] != "pass"
            and not (t["optional"] and t["verdict"] in ("no data", "insufficient data"))}


def test_all_scenarios_pass_on_a_healthy_target(tmp_path, database_url):
    args = ["--database-url", database_url] if database_url else []
    code, doc = _demo(tmp_path, *args)
    assert _failed(doc) == set()
    assert code == 0
    names = {s["name"]: s for s in doc["scenarios"]}
    assert set(names) == {"ticket-purchase", "scanner-burst", "scanner-race", "dashboard-load",
                          "dashboard-sales", "webhook-burst", "webhook-redelivery",
                          "webhook-bad-signatures"}
    assert all(s["iterations"] > 0 for s in names.values())
    _assert_every_viewer_got_every_sale(doc)
    # smoke: 20 events (enough for the p(95) budgets), then the same 20 again
    assert names["webhook-burst"]["iterations"] == 20 == names["webhook-redelivery"]["iterations"]
    assert doc["errors"] == []


# Each fault breaks one scenario's budgets, so only the scenarios it needs run
# (the healthy runs above run them all); the redelivery re-sends the burst's events.
PURCHASE = ("ticket-purchase",)
RACE = ("scanner-race",)
WEBHOOKS = ("webhook-burst", "webhook-redelivery")


def _only(scenarios: tuple[str, ...]) -> list[str]:
    return [arg for name in scenarios for arg in ("--scenario", name)]


@pytest.mark.parametrize("fault, scenarios, violated", [
    ("race", RACE, {"successful_scans{scenario:scanner-race} count==1",
                    "race_conditions_caught{scenario:scanner-race} count==9"}),
    ("double-webhook", WEBHOOKS,
     {"webhook_duplicates_processed{scenario:webhook-redelivery} count==0"}),
    ("latency=700", PURCHASE,
     {"http_req_duration{name:checkout,scenario:ticket-purchase} p(95)<500"}),
    ("errors=0.05", PURCHASE, {"checkout_errors{scenario:ticket-purchase} rate<0.01"}),
])
def test_each_budget_catches_its_fault(tmp_path, capsys, fault, scenarios, violated):
    code, doc = _demo(tmp_path, "--fault", fault, *_only(scenarios))
    assert code == 99
    assert violated <= _failed(doc)
    summary = capsys.readouterr().out
    for line in violated:
        metric, expression = line.split(" ")
        assert f"✗ {metric}  {expression}" in summary


def test_error_budgets_of_every_scenario_catch_injected_errors(tmp_path):
    # every other request fails; the scenarios run one after another, so each sees failures
    code, doc = _demo(tmp_path, "--fault", "errors=0.5")
    assert code == 99
    assert {"checkout_errors{scenario:ticket-purchase} rate<0.01",
            "http_req_failed{scenario:scanner-burst} rate<0.001",
            "http_req_failed{scenario:scanner-race} rate<0.001",
            "http_req_failed{scenario:dashboard-load} rate<0.01",
            "checks{scenario:webhook-burst} rate==1"} <= _failed(doc)


def _assert_every_viewer_got_every_sale(doc: dict) -> None:
    """The realtime budgets were judged on every (viewer, sale) pair: 20 viewers
    subscribed, and each received the change of each sale made while it was."""
    metrics = doc["metrics"]
    sales = metrics["http_reqs"]["by_tags"]
    sold = sum(p["sink"]["count"] for p in sales
               if p["tags"]["scenario"] == "dashboard-sales" and p["tags"]["status"] == "200")
    received = metrics["realtime_update_latency"]["total"]["count"]
    assert sold > 0
    assert metrics["realtime_updates_missed"]["total"]["count"] == 0
    # the first sale may come before the slowest viewer's join has been answered
    assert 20 * (sold - 1) <= received <= 20 * sold
    opened = sum(p["sink"]["count"] for p in metrics["ws_sessions"]["by_tags"]
                 if p["tags"]["status"] == "101")
    assert opened == 20


@pytest.mark.parametrize("profile", ["smoke", "pr"])
def test_the_dashboard_viewers_get_every_update_in_time(tmp_path, database_url, profile):
    """The seed's 'updates < 100ms': the dashboard with its writer alone, at the
    profiles a PR runs, on SQLite and PostgreSQL."""
    out = tmp_path / "out"
    args = ["--database-url", database_url] if database_url else []
    code = main(["demo", "--profile", profile, "--quiet", "--out", str(out),
                 "--scenario", "dashboard-load", "--scenario", "dashboard-sales", *args])
    doc = json.loads((out / "results.json").read_text())
    assert _failed(doc) == set()
    assert code == 0
    _assert_every_viewer_got_every_sale(doc)
    assert doc["errors"] == []
    # the PR comment shows the sessions and the subscription, misses included
    markdown = render_markdown(doc)
    assert "| dashboard-load | realtime | 20 | 0 |" in markdown
    assert re.search(r"^\| dashboard-load \| sales \| \d+ \|.*\| 0 \(0\.00%\) \|$", markdown, re.M)


@pytest.mark.parametrize("fault, violated", [
    ("realtime-lag=200", "realtime_update_latency{scenario:dashboard-load} p(95)<100"),
    ("realtime-drop=0.2", "realtime_updates_missed{scenario:dashboard-load} count==0"),
])
def test_the_realtime_budgets_catch_late_and_lost_updates(tmp_path, capsys, fault, violated):
    # smoke: 3-4 sales x 20 viewers: the chance that a 0.2 drop rate loses none is 0.8**60 (2e-6)
    code, doc = _demo(tmp_path, "--fault", fault,
                      "--scenario", "dashboard-load", "--scenario", "dashboard-sales")
    assert code == 99
    assert _failed(doc) == {violated}
    metric, expression = violated.split(" ")
    assert f"✗ {metric}  {expression}" in capsys.readouterr().out


def test_the_scenarios_webhook_signatures_verify_with_stripes_own_library(tmp_path, monkeypatch):
    """Stripe's SDK is the reference: every signature the scenario sends must pass
    `stripe.WebhookSignature.verify_header` with the shared secret."""
    secret = "whsec_scenario_check_0123456789"
    received: list[tuple[bytes, str]] = []

    async def webhook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers["Stripe-Signature"]))
        return web.json_response({"received": True, "duplicate": len(received) > 20})

    target = Target()
    target.app.router.add_post("/functions/v1/stripe-webhook", webhook)
    target.start()
    try:
        env = {**os.environ, "SUPABASE_ANON_KEY": "anon-key-x", "SUPABASE_SERVICE_ROLE_KEY": "svc-key-x",
               "STRIPE_WEBHOOK_SECRET": secret, "TEST_EVENT_ID": "evt-fixed",
               "TARGET_METRICS": "off"}  # this stand-in serves no /metrics
        plan = load_plan(PLAN, target=target.url, profile="smoke", env=env,
                         scenarios=["webhook-burst", "webhook-redelivery"])
        code = asyncio.run(run_and_report(plan, out=None, quiet=True))
    finally:
        target.stop()
    assert code == 0
    assert len(received) == 40
    for payload, header in received:
        assert stripe.WebhookSignature.verify_header(payload.decode(), header, secret, tolerance=300)
        event = json.loads(payload)
        assert event["type"] == "checkout.session.completed"
        assert event["data"]["object"]["metadata"]["event_id"] == "evt-fixed"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(received[0][0].decode(), received[0][1], "whsec_other", 300)


def _samples(doc: dict, metric: str, phase: str) -> int:
    """Samples of a rate metric sent while `phase` held (a list tag: any of its labels)."""
    return sum(row["sink"]["passes"] + row["sink"]["fails"]
               for row in doc["metrics"][metric]["by_tags"]
               if phase in row["tags"].get("phase", "").split(","))


def test_the_chaos_plan_passes_on_a_healthy_target(tmp_path):
    code, doc = _demo(tmp_path, "--chaos")
    assert _failed(doc) == set()
    assert code == 0
    faults = {f["name"]: f for f in doc["chaos"]["faults"]}
    assert faults["slow-target"]["rollback"] == "ok"
    assert all(f["started_at_s"] is not None for f in faults.values())
    assert all(f["ended_at_s"] == f["planned_end_s"] for f in faults.values()
               if f["name"] not in ("forged-webhooks", "rotated-secret"))  # those end with their scenario
    assert doc["chaos"]["recovery"][0]["verdict"] == "pass"
    # the budgets judged per phase had evidence: checkouts sent before, during
    # and after the slow target (30 VUs at smoke; each sends about every 2 s)
    for phase, least in (("during:aborted-checkouts", 5), ("during:retried-checkouts", 3),
                         ("during:slow-target", 4), ("after:slow-target", 1)):
        assert _samples(doc, "checkout_errors", phase) >= least, phase
    gated = {t["metric"]: t for t in doc["thresholds"]}["checkout_errors{phase:during:slow-target}"]
    assert gated["verdict"] == "pass" and gated["observed"] is not None


def test_a_chaos_plan_whose_selection_drops_every_fault_judges_its_chaos_budgets_as_no_data(
        tmp_path):
    """scanner-race has no faults: the budgets on chaos metrics are `no data`
    (as the load-time warning says), never a crash."""
    code, doc = _demo(tmp_path, "--chaos", *_only(RACE))
    assert code == 99
    chaos_budgets = {t["metric"]: t["verdict"] for t in doc["thresholds"]
                     if t["metric"].startswith("chaos_")}
    assert chaos_budgets and set(chaos_budgets.values()) == {"no data"}
    assert {t["metric"] for t in doc["thresholds"] if t["verdict"] == "fail"} == set()
    assert doc["status"] == "complete" and "chaos" in doc


@pytest.mark.parametrize("fault, scenarios, violated", [
    ("race", RACE, "successful_scans{scenario:scanner-race} count==1"),
    ("double-webhook", WEBHOOKS,
     "webhook_duplicates_processed{scenario:webhook-redelivery} count==0"),
    ("no-idempotency", PURCHASE, "chaos_idempotency_violations count==0"),  # retried checkouts
])
def test_the_chaos_plan_catches_a_broken_target(tmp_path, fault, scenarios, violated):
    code, doc = _demo(tmp_path, "--chaos", "--fault", fault, *_only(scenarios))
    assert code == 99
    assert violated in _failed(doc)
