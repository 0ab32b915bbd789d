"""A complete, valid plan loads into the model the engine expects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadaction.errors import Source
from loadaction.plan import load_plan
from loadaction.plan.model import (
    BatchStep, CheckStep, ConstantArrivalRate, ExtractStep, GroupStep, Limits, MapRecordStep,
    Plan, RampingVUs, RecordStep, RequestStep, SetStep, Stage, ThinkStep,
)
from loadaction.plan.templates import Static

FULL = Path(__file__).parent / "plans" / "full"
PLAN = str(FULL / "plan.yml")
INCLUDE = str(FULL / "ticket-scan.yml")
ENV = {
    "SUPABASE_URL": "http://127.0.0.1:54321/",
    "SUPABASE_ANON_KEY": "anon-key",
    "STRIPE_WEBHOOK_SECRET": "whsec_test",
}
CTX = {"env": ENV, "secrets": {"SUPABASE_ANON_KEY": "anon-key", "STRIPE_WEBHOOK_SECRET": "w"},
       "vars": {"event_id": 7, "quantity": 1, "payload": "{}"}, "vu": 1, "iter": 0,
       "scenario": {"name": "purchase", "iteration": 0},
       "data": {"tickets": {"id": "t-1"}, "scanners": {"id": "s-1"}}, "response": None}


def at(line: int, file: str = PLAN) -> Source:
    return Source(file, line)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(PLAN, env=ENV)


def test_plan_level_settings(plan: Plan) -> None:
    assert plan.name == "ticketing"
    assert plan.file == PLAN
    assert plan.target == "http://127.0.0.1:54321"
    assert plan.allowed_hosts == ("127.0.0.1", "127.0.0.1:54321", "api.stripe.test")
    assert plan.timeout == 10.0
    assert plan.max_body_bytes == 512 * 1024
    assert [(name, value.render(CTX)) for name, value in plan.headers] == [("apikey", "anon-key")]
    assert dict(plan.secrets) == {"SUPABASE_ANON_KEY": "anon-key",
                                  "STRIPE_WEBHOOK_SECRET": "whsec_test"}
    assert dict(plan.env) == ENV
    assert [(name, value.render(CTX)) for name, value in plan.vars] == [
        ("event_id", ""), ("quantity", 1)]
    assert plan.limits == Limits()
    assert plan.profile is None


def test_metrics_and_data_from_both_files(plan: Plan) -> None:
    assert {name: (m.kind, m.is_time, m.source) for name, m in plan.metrics.items()} == {
        "checkout_duration": ("trend", True, at(24)),
        "checkout_errors": ("rate", False, at(25)),
        "insufficient_inventory": ("counter", False, at(26)),
        "successful_scans": ("counter", False, at(3, INCLUDE)),
        "already_scanned": ("counter", False, at(4, INCLUDE)),
    }
    tickets, scanners = plan.data["tickets"], plan.data["scanners"]
    assert (tickets.mode, tickets.rows, tickets.source) == (
        "unique", ({"id": "t-1", "qty": 2}, {"id": "t-2", "qty": 1}), at(19))
    assert (scanners.mode, scanners.rows) == (
        "random", ({"id": "s-1", "name": "north gate"}, {"id": "s-2", "name": "south gate"}))


def test_thresholds(plan: Plan) -> None:
    summary = [(t.selector, t.expr.text, t.abort_on_fail, t.delay_abort_eval, t.optional,
                t.source.line) for t in plan.thresholds]
    assert summary == [
        ("http_req_duration", "p(95)<500", False, 0.0, False, 29),
        ("http_req_duration{name:scan,scenario:scanner}", "p(95)<200", True, 10.0, False, 31),
        ("successful_scans", "count==1", False, 0.0, True, 35),
        ("http_req_duration{scenario:purchase}", "p(95)<500", False, 0.0, False, 100),
    ]
    assert plan.thresholds[1].tags == (("name", "scan"), ("scenario", "scanner"))


def test_scenarios(plan: Plan) -> None:
    purchase, scanner = plan.scenarios
    assert purchase.name == "purchase" and purchase.exec == "purchase"
    assert purchase.executor == RampingVUs(
        stages=(Stage(30.0, 100.0), Stage(120.0, 100.0), Stage(30.0, 0.0)),
        start_vus=0, graceful_ramp_down=30.0)
    assert (purchase.start_time, purchase.graceful_stop, purchase.tags, purchase.source) == (
        0.0, 30.0, (("team", "payments"),), at(91))
    assert scanner.exec == "scan" and scanner.source == at(18, INCLUDE)
    assert scanner.executor == ConstantArrivalRate(
        rate=50.0, duration=60.0, pre_allocated_vus=10, max_vus=50, time_unit=1.0)
    assert scanner.start_time == 10.0


def test_setup_and_teardown(plan: Plan) -> None:
    assert plan.setup is not None and plan.teardown is not None
    assert plan.setup.name == "setup" and plan.setup.source == at(44)
    request = plan.setup.steps[0]
    assert isinstance(request, RequestStep)
    assert request.request.json is not None
    assert request.request.json.render({}) == {"tickets": 100}
    extract = plan.setup.steps[1]
    assert isinstance(extract, ExtractStep) and extract.items[0].var == "event_id"
    delete = plan.teardown.steps[0]
    assert isinstance(delete, RequestStep)
    assert delete.request.name == "/test-data/events/{{ vars.event_id }}"
    assert delete.request.url.render(CTX) == "/test-data/events/7"


def test_purchase_flow(plan: Plan) -> None:
    flow = plan.flows["purchase"]
    assert flow.source == at(51)
    kinds = [type(step).__name__ for step in flow.steps]
    assert kinds == ["RequestStep", "CheckStep", "ExtractStep", "RecordStep", "RecordStep",
                     "RecordStep", "SetStep", "RequestStep", "CheckStep", "ThinkStep",
                     "GroupStep"]
    first = flow.steps[0]
    assert isinstance(first, RequestStep)
    spec = first.request
    assert (spec.method, spec.name, spec.source, spec.timeout, spec.expect, spec.tags) == (
        "POST", "checkout", at(52), 5.0, (200, 409), (("kind", "write"),))
    assert isinstance(spec.url, Static)
    assert spec.url.render({}) == "/functions/v1/create-checkout-session"
    assert spec.query is not None and spec.query.render({}) == {"a": 1}
    assert [(k, v.render(CTX)) for k, v in spec.headers] == [("Authorization", "Bearer anon-key")]
    assert spec.json is not None
    assert spec.json.render(CTX) == {"event_id": 7, "quantity": 1}  # native types kept
    assert spec.form is None and spec.body is None


def test_checks(plan: Plan) -> None:
    check = plan.flows["purchase"].steps[1]
    assert isinstance(check, CheckStep)
    assert check.response is None and check.source == at(62)
    assert [c.name for c in check.conditions] == [
        "checkout: status in [200, 409]",
        "checkout: json $.url exists",
        "checkout: json $.currency == usd",
        "checkout: header content-type contains json",
        "checkout: body matches session_",
    ]
    status, url, currency, header, body = check.conditions
    assert (status.subject, status.key, status.matcher.kind, status.matcher.operand) == (
        "status", None, "in", (200, 409))
    assert url.subject == "json" and url.key.text == "$.url"  # type: ignore[union-attr]
    assert url.key.first({"url": "https://x"}) == (True, "https://x")  # type: ignore[union-attr]
    assert (url.matcher.kind, url.matcher.operand) == ("exists", True)
    assert (currency.matcher.kind, currency.matcher.operand) == ("equals", "usd")
    assert (header.key, header.matcher.kind, header.matcher.operand) == (
        "content-type", "contains", "json")
    assert body.matcher.kind == "matches"
    assert body.matcher.operand == re.compile("session_")
    assert [c.source.line for c in check.conditions] == [64, 65, 65, 66, 67]
    later = plan.flows["purchase"].steps[8]
    assert isinstance(later, CheckStep) and later.response == "checkout"
    assert [c.name for c in later.conditions] == ["status == 200"]


def test_extract_record_set_think_group(plan: Plan) -> None:
    steps = plan.flows["purchase"].steps
    extract = steps[2]
    assert isinstance(extract, ExtractStep)
    assert [(e.var, e.subject, getattr(e.key, "text", e.key)) for e in extract.items] == [
        ("session_id", "json", "$.session_id"), ("etag", "header", "ETag"),
        ("last_status", "status", None)]
    duration, errors, inventory = steps[3:6]
    assert isinstance(duration, RecordStep) and duration.when is None
    assert duration.value is not None
    assert duration.value.render({"response": {"duration_ms": 12.5}}) == 12.5
    assert isinstance(errors, RecordStep) and errors.value is not None
    assert errors.value.render({"response": {"status": 500}}) is True
    assert isinstance(inventory, RecordStep) and inventory.value is None
    assert inventory.when is not None and inventory.when.render({"response": {"status": 409}})
    assign = steps[6]
    assert isinstance(assign, SetStep) and assign.assignments[0][0] == "payload"
    assert assign.assignments[0][1].render({}).startswith('{"id": "')
    webhook = steps[7]
    assert isinstance(webhook, RequestStep)
    signature = dict(webhook.request.headers)["Stripe-Signature"].render(CTX)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)
    assert steps[9] == ThinkStep(0.5, 2.5, at(81))
    group = steps[10]
    assert isinstance(group, GroupStep) and group.name == "initial_load"
    batch, pause = group.steps
    assert isinstance(batch, BatchStep) and pause == ThinkStep(1.0, 1.0, at(88))
    events, revenue = batch.requests
    assert (events.name, events.method, events.source) == ("events", "GET", at(86))
    assert revenue.form is not None and revenue.form.render({}) == {"p_event_id": 1}


def test_map_record_from_the_include(plan: Plan) -> None:
    record = plan.flows["scan"].steps[1]
    assert isinstance(record, MapRecordStep)
    assert record.subject == "json" and record.key.text == "$.result"  # type: ignore[union-attr]
    assert record.mapping == (("valid", "successful_scans"),
                              ("already_scanned", "already_scanned"))
    assert record.source == at(16, INCLUDE)


def test_command_line_inputs_override_the_plan() -> None:
    plan = load_plan(PLAN, env=ENV, target="https://staging.example.test/api/",
                     vars={"quantity": "3", "extra": "x"}, scenarios=["scanner"],
                     extra_allowed_hosts=["Metrics.Example.test:9000"],
                     limits=Limits(max_duration=100.0))
    assert plan.target == "https://staging.example.test/api"
    assert plan.allowed_hosts == ("staging.example.test", "staging.example.test:443",
                                  "api.stripe.test", "metrics.example.test:9000")
    assert [(name, value.render(CTX)) for name, value in plan.vars] == [
        ("event_id", ""), ("quantity", "3"), ("extra", "x")]
    assert [s.name for s in plan.scenarios] == ["scanner"]
    assert "purchase" in plan.flows  # flows stay even when no scenario runs them
    # Budgets on scenarios that do not run are dropped; they could only report `no data`.
    assert [t.selector for t in plan.thresholds] == [
        "http_req_duration", "http_req_duration{name:scan,scenario:scanner}", "successful_scans"]
    assert plan.limits.max_duration == 100.0


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert load_plan(PLAN).secrets["SUPABASE_ANON_KEY"] == "anon-key"


def test_plan_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "checkout-smoke.yml"
    path.write_text("target: http://localhost\n"
                    "flows: {f: [{request: {url: /}}]}\n"
                    "scenarios: {s: {executor: shared-iterations, exec: f}}\n")
    plan = load_plan(path, env={})
    assert plan.name == "checkout-smoke"
    assert plan.timeout == 60.0 and plan.max_body_bytes == 1 << 20 and plan.headers == ()
    assert plan.setup is None and plan.teardown is None


def test_the_documented_example_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "plan-format.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert example is not None
    (tmp_path / "plan.yml").write_text(example.group(1))
    (tmp_path / "ticket-purchase.yml").write_text(
        "flows: {scanner: [{request: {name: scan, method: POST, url: /scan}}]}\n"
        "scenarios: {scanner: {executor: constant-arrival-rate, rate: 10, duration: 1m,"
        " preAllocatedVUs: 5}}\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test-tickets.json").write_text('[{"id": 1}]')
    plan = load_plan(tmp_path / "plan.yml", env=ENV)
    assert [s.name for s in plan.scenarios] == ["purchase", "scanner"]
    assert load_plan(tmp_path / "plan.yml", env=ENV, profile="smoke").profile == "smoke"


def test_a_file_included_twice_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "metrics.yml").write_text("metrics: {scans: counter}\n")
    (tmp_path / "a.yml").write_text("include: [shared/metrics.yml]\n")
    (tmp_path / "b.yml").write_text("include: [shared/../shared/metrics.yml]\n")
    (tmp_path / "plan.yml").write_text(
        "target: http://localhost\n"
        "include: [a.yml, b.yml]\n"
        "flows: {f: [{request: {url: /}}, {record: {status: true, map: {'200': scans}}}]}\n"
        "scenarios: {s: {executor: shared-iterations, exec: f}}\n")
    plan = load_plan(tmp_path / "plan.yml", env={})
    assert list(plan.metrics) == ["scans"]
    assert plan.metrics["scans"].source == Source(str(tmp_path / "shared" / "metrics.yml"), 1)
    record = plan.flows["f"].steps[1]
    assert isinstance(record, MapRecordStep)
    assert (record.subject, record.key, record.mapping) == ("status", None, (("200", "scans"),))
