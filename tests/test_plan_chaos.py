"""The `chaos:` section: faults load into the model the chaos runtime reads,
and every mistake is one `file:line: message (hint)` before anything runs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from loadaction.cli import main
from loadaction.errors import ExitCode, PlanError, Source
from loadaction.metrics.thresholds import ThresholdExpr
from loadaction.plan import load_plan
from loadaction.plan.model import (
    AbortFault, ChaosToolkitFault, CommandFault, DuplicateFault, Fault, HttpCall, HttpFault,
    Plan, RecoveryBudget, ReorderFault, TamperFault, TimeoutRetryFault, ToxiproxyFault,
)
from loadaction.plan.timeline import describe

ENV = {"SUPABASE_URL": "http://localhost:8080", "STRIPE_WEBHOOK_SECRET": "whsec_test"}

# The chaos items of each test start at line 3 of plan.yml.
HEAD = """
target: http://localhost:8080
chaos:
"""
REST = """
secrets: [STRIPE_WEBHOOK_SECRET]
vars: {control: /_control}
flows:
  purchase:
    - request: {name: checkout, method: POST, url: /checkout}
  hooks:
    - group:
        name: deliveries
        steps:
          - batch:
              - {name: webhook, method: POST, url: /webhook}
scenarios:
  ticket-purchase: {executor: constant-vus, duration: 60s, exec: purchase, startTime: 10s}
  webhooks: {executor: constant-vus, duration: 60s, exec: hooks}
profiles:
  smoke: {scale: {duration: 0.5}}
"""


def write(tmp_path: Path, chaos: str, extra: str = "", head: str = HEAD) -> Path:
    text = (head.lstrip("\n") + textwrap.indent(textwrap.dedent(chaos).strip("\n"), "  ")
            + "\n" + REST.lstrip("\n") + textwrap.dedent(extra).lstrip("\n"))
    path = tmp_path / "plan.yml"
    path.write_text(text)
    return path


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chaos: str, extra: str = "",
         **options: Any) -> Plan:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, chaos, extra)
    return load_plan("plan.yml", env=ENV, **options)


def load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chaos: str,
               extra: str = "", head: str = HEAD) -> str:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, chaos, extra, head)
    with pytest.raises(PlanError) as caught:
        load_plan("plan.yml", env=ENV)
    assert caught.value.exit_code == ExitCode.INVALID
    return str(caught.value)


def only(plan: Plan) -> Fault:
    (fault,) = plan.chaos
    return fault


# ---------------------------------------------------------------- each kind loads

def test_an_http_fault_with_recovery_budgets(tmp_path, monkeypatch) -> None:
    fault = only(load(tmp_path, monkeypatch, """
        - name: slow-target
          kind: http
          at: 20s
          from: ticket-purchase
          duration: 15s
          start:
            method: put
            url: "{{ env.SUPABASE_URL }}{{ vars.control }}/faults"
            headers: {Authorization: "Bearer {{ secrets.STRIPE_WEBHOOK_SECRET }}"}
            json: {latency_ms: 700, expires_in_s: 60}
            expect: [200]
            timeout: 5s
          stop: {method: DELETE, url: "http://localhost:8080/_control/faults", body: "all"}
          recovery:
            - metric: "http_req_duration{scenario:ticket-purchase}"
              threshold: "p(95)<500"
              within: 30s
            - {metric: http_req_failed, threshold: "rate<0.01", within: 1m, stable: 10s}
    """))
    assert (fault.name, fault.at, fault.duration, fault.anchor) == (
        "slow-target", 20.0, 15.0, "ticket-purchase")
    assert fault.source == Source("plan.yml", 3)
    action = fault.action
    assert isinstance(action, HttpFault)
    start = action.start
    assert (start.method, start.expect, start.timeout, start.source) == (
        "PUT", (200,), 5.0, Source("plan.yml", 8))
    context = {"env": ENV, "vars": {"control": "/_control"}, "secrets": ENV}
    assert start.url.render(context) == "http://localhost:8080/_control/faults"
    assert [(name, value.render(context)) for name, value in start.headers] == [
        ("Authorization", "Bearer whsec_test")]
    assert start.json is not None and start.json.render(context) == {
        "latency_ms": 700, "expires_in_s": 60}
    stop = action.stop
    assert isinstance(stop, HttpCall)
    assert (stop.method, stop.expect, stop.timeout, stop.json) == ("DELETE", None, 10.0, None)
    assert stop.body is not None and stop.body.render({}) == "all"
    assert fault.recovery == (
        RecoveryBudget("http_req_duration", (("scenario", "ticket-purchase"),),
                       ThresholdExpr("p", 95.0, "<", 500.0, "p(95)<500"), 30.0,
                       Source("plan.yml", 17)),
        RecoveryBudget("http_req_failed", (), ThresholdExpr("rate", None, "<", 0.01, "rate<0.01"),
                       60.0, Source("plan.yml", 20), stable=10.0),
    )


def test_a_command_fault(tmp_path, monkeypatch) -> None:
    fault = only(load(tmp_path, monkeypatch, """
        - name: db-down
          kind: command
          duration: 10s
          start: "kubectl scale deploy/db --replicas=0 -n {{ env.SUPABASE_URL | length }}"
          stop: kubectl scale deploy/db --replicas=1
          timeout: 1m
    """))
    assert (fault.at, fault.anchor, fault.recovery) == (0.0, None, ())
    action = fault.action
    assert isinstance(action, CommandFault)
    assert action.start.render({"env": {"SUPABASE_URL": "abc"}}).endswith("-n 3")
    assert action.stop.render({}) == "kubectl scale deploy/db --replicas=1"
    assert action.timeout == 60.0


def test_a_toxiproxy_fault(tmp_path, monkeypatch) -> None:
    plan = load(tmp_path, monkeypatch, """
        - name: slow-db
          kind: toxiproxy
          duration: 10s
          proxy: postgres
          toxic: {type: latency, attributes: {latency: 500, jitter: 50}}
        - name: cut
          kind: toxiproxy
          duration: 10s
          api: "http://toxiproxy:8474"
          proxy: postgres
          toxic: {type: reset_peer, stream: upstream, toxicity: 0.5}
    """)
    slow, cut = (fault.action for fault in plan.chaos)
    assert isinstance(slow, ToxiproxyFault) and isinstance(cut, ToxiproxyFault)
    assert (slow.api.render({}), slow.proxy, slow.toxic_type, slow.stream, slow.toxicity) == (
        "http://127.0.0.1:8474", "postgres", "latency", "downstream", 1.0)
    assert slow.attributes.render({}) == {"latency": 500, "jitter": 50}
    assert (cut.api.render({}), cut.toxic_type, cut.stream, cut.toxicity) == (
        "http://toxiproxy:8474", "reset_peer", "upstream", 0.5)
    assert cut.attributes.render({}) == {}


def test_a_chaostoolkit_fault(tmp_path, monkeypatch) -> None:
    action = only(load(tmp_path, monkeypatch, """
        - name: kill-pod
          kind: chaostoolkit
          duration: 30s
          action:
            type: action
            name: terminate-db-pod
            provider:
              type: python
              module: chaosk8s.pod.actions
              func: terminate_pods
              arguments: {label_selector: app=db, ns: "${namespace}"}
          rollback:
            type: action
            name: restart
            provider: {type: process, path: kubectl, arguments: "rollout restart deploy/db"}
          configuration: {namespace: {type: env, key: NAMESPACE}}
    """)).action
    assert isinstance(action, ChaosToolkitFault)
    assert action.action == {
        "type": "action", "name": "terminate-db-pod",
        "provider": {"type": "python", "module": "chaosk8s.pod.actions",
                     "func": "terminate_pods",
                     "arguments": {"label_selector": "app=db", "ns": "${namespace}"}}}
    assert action.rollback["provider"] == {"type": "process", "path": "kubectl",
                                           "arguments": "rollout restart deploy/db"}
    assert action.configuration == {"namespace": {"type": "env", "key": "NAMESPACE"}}


def test_an_abort_fault(tmp_path, monkeypatch) -> None:
    fault = only(load(tmp_path, monkeypatch, """
        - {name: drop, kind: abort, duration: 5s, requests: [webhook, checkout], probability: 0.25}
    """))
    assert fault.action == AbortFault(requests=("webhook", "checkout"), probability=0.25)


def test_a_duplicate_fault(tmp_path, monkeypatch) -> None:
    plan = load(tmp_path, monkeypatch, """
        - {name: twice, kind: duplicate, duration: 5s, requests: [webhook]}
        - {name: later, kind: duplicate, duration: 5s, requests: [webhook], copies: 3,
           delay: 500ms, probability: 0.5}
    """)
    assert [fault.action for fault in plan.chaos] == [
        DuplicateFault(requests=("webhook",)),
        DuplicateFault(requests=("webhook",), probability=0.5, copies=3, delay=0.5),
    ]


def test_a_reorder_fault(tmp_path, monkeypatch) -> None:
    fault = only(load(tmp_path, monkeypatch, """
        - {name: shuffle, kind: reorder, duration: 5s, requests: [webhook], window: 3,
           maxWait: 250ms}
    """))
    assert fault.action == ReorderFault(requests=("webhook",), window=3, max_wait=0.25)


def test_tamper_faults(tmp_path, monkeypatch) -> None:
    plan = load(tmp_path, monkeypatch, """
        - {name: bad-sig, kind: tamper, duration: 5s, requests: [webhook], mode: signature}
        - name: stale
          kind: tamper
          duration: 5s
          requests: [webhook]
          mode: stale
          secret: "{{ secrets.STRIPE_WEBHOOK_SECRET }}"
          header: X-Signature
          expect: 401
          probability: 0.1
        - name: rotate
          kind: tamper
          duration: 5s
          requests: [webhook]
          mode: rotation
          secret: "{{ secrets.STRIPE_WEBHOOK_SECRET }}"
    """)
    bad, stale, rotate = (fault.action for fault in plan.chaos)
    assert bad == TamperFault(requests=("webhook",), mode="signature", expect=(400,))
    assert isinstance(stale, TamperFault) and isinstance(rotate, TamperFault)
    assert (stale.mode, stale.expect, stale.header, stale.probability) == (
        "stale", (401,), "X-Signature", 0.1)
    assert stale.secret is not None and stale.secret.render({"secrets": ENV}) == "whsec_test"
    assert (rotate.mode, rotate.expect, rotate.header) == ("rotation", (200,), "Stripe-Signature")


def test_timeout_retry_faults(tmp_path, monkeypatch) -> None:
    plan = load(tmp_path, monkeypatch, """
        - {name: retry, kind: timeout-retry, duration: 5s, requests: [checkout]}
        - {name: race, kind: timeout-retry, duration: 5s, requests: [checkout], mode: concurrent,
           timeout: 1s, retries: 2, header: X-Idempotency-Key}
    """)
    assert [fault.action for fault in plan.chaos] == [
        TimeoutRetryFault(requests=("checkout",)),
        TimeoutRetryFault(requests=("checkout",), mode="concurrent", timeout=1.0, retries=2,
                          header="X-Idempotency-Key"),
    ]


def test_no_chaos_section_and_an_empty_one(tmp_path, monkeypatch) -> None:
    assert load(tmp_path, monkeypatch, "[]").chaos == ()


# ---------------------------------------------------------------- mistakes

THRESHOLD = """
thresholds:
  "http_req_duration{phase:%s}": ["p(95)<500"]
"""
SLOW = """
- {name: slow-target, kind: abort, duration: 5s, requests: [webhook]}
"""

CASES: list[tuple[str, str, str, str]] = [
    ("unknown kind", """
        - name: f
          kind: htp
          duration: 5s
     """, "", "plan.yml:4: kind: unknown value 'htp' (expected one of: http, command, "
              "toxiproxy, chaostoolkit, abort, duplicate, reorder, tamper, timeout-retry) "
              "(did you mean 'http'?)"),
    ("misspelt kind key", """
        - {name: f, knd: abort, duration: 5s}
     """, "", "plan.yml:3: unknown key 'knd' in fault 'f' (did you mean 'kind'?)"),
    ("missing name", """
        - {kind: abort, duration: 5s, requests: [webhook]}
     """, "", "plan.yml:3: missing required key 'name' in fault"),
    ("bad name", """
        - {name: "slow, target", kind: abort, duration: 5s, requests: [webhook]}
     """, "", "plan.yml:3: name: fault names may contain only letters, digits, '_', '-' "
              "and '.' (they become phase tag values), got 'slow, target'"),
    ("unknown key", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          probabilty: 0.5
     """, "", "plan.yml:7: unknown key 'probabilty' in fault 'f' (did you mean 'probability'?)"),
    ("key of another kind", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          copies: 2
     """, "", "plan.yml:7: unknown key 'copies' in fault 'f' "
              "('copies' is not an option of abort; it belongs to duplicate)"),
    ("missing duration", """
        - {name: f, kind: abort, requests: [webhook]}
     """, "", "plan.yml:3: missing required key 'duration' in fault 'f'"),
    ("missing option of the kind", """
        - {name: f, kind: http, duration: 5s, start: {method: POST, url: "http://x/"}}
     """, "", "plan.yml:3: missing required key 'stop' in fault 'f'"),
    ("bad duration", """
        - {name: f, kind: abort, duration: 5 sec, requests: [webhook]}
     """, "", "plan.yml:3: duration: invalid duration '5 sec' (expected seconds, "
              "or e.g. 500ms, 30s, 2m, 1h30m)"),
    ("zero duration", """
        - {name: f, kind: abort, duration: 0s, requests: [webhook]}
     """, "", "plan.yml:3: duration: must be longer than 0s"),
    ("negative at", """
        - name: f
          kind: abort
          at: -5
          duration: 5s
          requests: [webhook]
     """, "", "plan.yml:5: at: must not be negative, got -5"),
    ("probability above 1", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          probability: 1.5
     """, "", "plan.yml:7: probability: must be greater than 0 and at most 1, got 1.5"),
    ("probability 0", """
        - {name: f, kind: tamper, mode: body, duration: 5s, requests: [webhook], probability: 0}
     """, "", "plan.yml:3: probability: must be greater than 0 and at most 1, got 0"),
    ("copies below 1", """
        - {name: f, kind: duplicate, duration: 5s, requests: [webhook], copies: 0}
     """, "", "plan.yml:3: copies: must be at least 1, got 0"),
    ("window below 2", """
        - {name: f, kind: reorder, duration: 5s, requests: [webhook], window: 1}
     """, "", "plan.yml:3: window: must be at least 2, got 1"),
    ("unknown request name", """
        - name: f
          kind: abort
          duration: 5s
          requests:
            - checkout
            - webhok
     """, "", "plan.yml:8: requests: no flow has a request named 'webhok' "
              "(did you mean 'webhook'?)"),
    ("empty requests", """
        - {name: f, kind: abort, duration: 5s, requests: []}
     """, "", "plan.yml:3: requests: the list is empty"),
    ("unknown scenario in from", """
        - name: f
          kind: abort
          from: ticket-purchse
          duration: 5s
          requests: [webhook]
     """, "", "plan.yml:5: from: unknown scenario 'ticket-purchse' "
              "(did you mean 'ticket-purchase'?)"),
    ("duplicate fault name", """
        - {name: f, kind: abort, duration: 5s, requests: [webhook]}
        - {name: g, kind: abort, duration: 5s, requests: [webhook]}
        - {name: f, kind: reorder, duration: 5s, requests: [webhook]}
     """, "", "plan.yml:5: fault 'f' is already defined at plan.yml:3"),
    ("recovery metric not supported", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          recovery:
            - {metric: checks, threshold: "rate>0.99", within: 10s}
     """, "", "plan.yml:8: metric: a recovery budget cannot judge 'checks' (recovery budgets "
              "judge http_req_duration (avg, med, max, p(N)) or http_req_failed (rate), "
              "optionally for one scenario: http_req_duration{scenario:<name>})"),
    ("recovery metric misspelt", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          recovery:
            - {metric: http_req_duraton, threshold: "p(95)<500", within: 10s}
     """, "", "plan.yml:8: metric: a recovery budget cannot judge 'http_req_duraton' "
              "(did you mean 'http_req_duration'?)"),
    ("recovery tag not supported", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          recovery:
            - {metric: "http_req_duration{name:webhook}", threshold: "p(95)<500", within: 10s}
     """, "", "plan.yml:8: metric: a recovery budget cannot select by 'name' (recovery "
              "budgets judge http_req_duration (avg, med, max, p(N)) or http_req_failed "
              "(rate), optionally for one scenario: http_req_duration{scenario:<name>})"),
    ("recovery on an unknown scenario", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          recovery:
            - {metric: "http_req_failed{scenario:webhook}", threshold: "rate<0.1", within: 10s}
     """, "", "plan.yml:8: metric: unknown scenario 'webhook' (did you mean 'webhooks'?)"),
    ("bad recovery threshold", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          recovery:
            - metric: http_req_duration
              threshold: "p95<500"
              within: 10s
     """, "", "plan.yml:9: threshold: invalid threshold 'p95<500': expected avg, min, med, "
              "max, p(N), rate, count, value, last or slope"),
    ("recovery aggregation not supported", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          recovery:
            - {metric: http_req_duration, threshold: "min<500", within: 10s}
     """, "", "plan.yml:8: threshold 'min<500': a recovery budget on http_req_duration takes "
              "avg, med, max, p(N)"),
    ("recovery without within", """
        - name: f
          kind: abort
          duration: 5s
          requests: [webhook]
          recovery:
            - {metric: http_req_failed, threshold: "rate<0.1"}
     """, "", "plan.yml:8: missing required key 'within' in recovery budget"),
    ("phase tag with an unknown fault", SLOW, THRESHOLD % "during:slow-targt",
     "plan.yml:21: unknown phase 'during:slow-targt' in thresholds "
     "(did you mean 'during:slow-target'?)"),
    ("phase tag with no fault name", SLOW, THRESHOLD % "while",
     "plan.yml:21: unknown phase 'while' in thresholds "
     "(phases: before, during:slow-target, after:slow-target)"),
    ("tamper stale without secret", """
        - name: f
          kind: tamper
          duration: 5s
          requests: [webhook]
          mode: stale
     """, "", "plan.yml:7: mode stale signs the request anew and needs 'secret' "
              "(e.g. secret: \"{{ secrets.STRIPE_WEBHOOK_SECRET }}\")"),
    ("tamper secret where the mode does not sign", """
        - name: f
          kind: tamper
          duration: 5s
          requests: [webhook]
          mode: body
          secret: s
     """, "", "plan.yml:8: secret: only modes stale and rotation sign anew; "
              "mode body does not use it"),
    ("tamper unknown mode", """
        - {name: f, kind: tamper, duration: 5s, requests: [webhook], mode: signatures}
     """, "", "plan.yml:3: mode: unknown value 'signatures' (expected one of: body, signature, "
              "stale, missing-header, rotation) (did you mean 'signature'?)"),
    ("timeout-retry mode of tamper", """
        - {name: f, kind: timeout-retry, duration: 5s, requests: [webhook], mode: stale}
     """, "", "plan.yml:3: mode: unknown value 'stale' (expected one of: retry, "
              "different-body, concurrent)"),
    ("chaostoolkit activity without provider", """
        - name: f
          kind: chaostoolkit
          duration: 5s
          action: {type: action, name: kill}
          rollback: {type: action, name: heal, provider: {type: process, path: /bin/true}}
     """, "", "plan.yml:6: missing required key 'provider' in action "
              "(a Chaos Toolkit activity needs type, name and provider)"),
    ("chaostoolkit provider without its keys", """
        - name: f
          kind: chaostoolkit
          duration: 5s
          action: {type: action, name: kill, provider: {type: process, path: /bin/true}}
          rollback:
            type: action
            name: heal
            provider: {type: python, module: chaosk8s.pod.actions}
     """, "", "plan.yml:10: missing required key 'func' in python provider"),
    ("chaostoolkit unknown activity type", """
        - name: f
          kind: chaostoolkit
          duration: 5s
          action: {type: actoin, name: kill, provider: {type: process, path: /bin/true}}
          rollback: {type: action, name: heal, provider: {type: process, path: /bin/true}}
     """, "", "plan.yml:6: type: unknown value 'actoin' (expected one of: action, probe) "
              "(did you mean 'action'?)"),
    ("chaostoolkit with a template", """
        - name: f
          kind: chaostoolkit
          duration: 5s
          action:
            type: action
            name: kill
            provider: {type: process, path: "{{ env.KUBECTL }}"}
          rollback: {type: action, name: heal, provider: {type: process, path: /bin/true}}
     """, "", "plan.yml:9: templates are not rendered in Chaos Toolkit activities (use Chaos "
              "Toolkit's ${name} with configuration, e.g. {type: env, key: NAME})"),
    ("toxiproxy attribute of another toxic", """
        - name: f
          kind: toxiproxy
          duration: 5s
          proxy: db
          toxic:
            type: latency
            attributes: {latency: 100, jiter: 10}
     """, "", "plan.yml:9: unknown key 'jiter' in attributes of a latency toxic "
              "(did you mean 'jitter'?)"),
    ("toxiproxy toxic without its attribute", """
        - name: f
          kind: toxiproxy
          duration: 5s
          proxy: db
          toxic: {type: bandwidth}
     """, "", "plan.yml:7: missing required key 'rate' in attributes of a bandwidth toxic"),
    ("toxiproxy unknown toxic", """
        - {name: f, kind: toxiproxy, duration: 5s, proxy: db, toxic: {type: latncy}}
     """, "", "plan.yml:3: type: unknown value 'latncy' (expected one of: latency, bandwidth, "
              "slow_close, timeout, reset_peer, slicer, limit_data) (did you mean 'latency'?)"),
    ("toxiproxy toxicity above 1", """
        - name: f
          kind: toxiproxy
          duration: 5s
          proxy: db
          toxic: {type: timeout, toxicity: 2}
     """, "", "plan.yml:7: toxicity: must be greater than 0 and at most 1, got 2"),
    ("http call without method", """
        - name: f
          kind: http
          duration: 5s
          start: {url: "http://localhost:8080/faults"}
          stop: {method: DELETE, url: "http://localhost:8080/faults"}
     """, "", "plan.yml:6: missing required key 'method' in start"),
    ("http call with a relative URL", """
        - name: f
          kind: http
          duration: 5s
          start: {method: POST, url: /faults}
          stop: {method: DELETE, url: "http://localhost:8080/faults"}
     """, "", "plan.yml:6: url: expected an absolute http(s) URL, got '/faults'"),
    ("http call with a key of a request", """
        - name: f
          kind: http
          duration: 5s
          start: {method: POST, url: "http://localhost:8080/faults", form: {a: 1}}
          stop: {method: DELETE, url: "http://localhost:8080/faults"}
     """, "", "plan.yml:6: unknown key 'form' in start"),
    ("template reading a VU's context", """
        - name: f
          kind: command
          duration: 5s
          start: "echo {{ vu }}"
          stop: "echo stop"
     """, "", "plan.yml:6: unknown name 'vu' in template "
              "(templates here can use env, secrets, vars)"),
    ("template with an undeclared secret", """
        - name: f
          kind: command
          duration: 5s
          start: "echo {{ secrets.STRIPE_WEBHOOK_SECRT }}"
          stop: "echo stop"
     """, "", "plan.yml:6: 'secrets.STRIPE_WEBHOOK_SECRT' is not declared "
              "(did you mean 'STRIPE_WEBHOOK_SECRET'?)"),
    ("bad header name", """
        - {name: f, kind: timeout-retry, duration: 5s, requests: [webhook], header: "Idem Key"}
     """, "", "plan.yml:3: header: 'Idem Key' is not a valid header name"),
    ("not a list", """
        name: f
     """, "", "plan.yml:2: chaos: expected a list, got a mapping"),
]


@pytest.mark.parametrize(("chaos", "extra", "message"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_mistakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chaos: str, extra: str,
                  message: str) -> None:
    assert load_error(tmp_path, monkeypatch, chaos, extra) == message


def test_a_phase_tag_needs_chaos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = load_error(tmp_path, monkeypatch, "", THRESHOLD % "before",
                         head="target: http://localhost:8080\n")
    assert message == ("plan.yml:20: tag 'phase:before' in thresholds: the plan has no chaos "
                       "faults (samples get a phase (before, during:<fault>, after:<fault>) "
                       "only when the plan has a chaos section)")


def test_a_scenario_threshold_phase_tag_names_a_fault(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.yml").write_text(textwrap.dedent("""
        target: http://localhost:8080
        chaos:
          - {name: slow-target, kind: abort, duration: 5s, requests: [checkout]}
        flows:
          purchase: [{request: {name: checkout, url: /checkout}}]
        scenarios:
          purchase:
            executor: constant-vus
            duration: 1s
            thresholds:
              "http_req_duration{phase:after:slow}": ["p(95)<500"]
    """).lstrip())
    with pytest.raises(PlanError) as caught:
        load_plan("plan.yml", env=ENV)
    assert str(caught.value) == ("plan.yml:11: unknown phase 'after:slow' in thresholds "
                                 "(did you mean 'after:slow-target'?)")


def test_phase_tags_name_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = load(tmp_path, monkeypatch, SLOW, """
        thresholds:
          "http_req_duration{phase:before}": ["p(95)<500"]
          "http_req_duration{phase:during:slow-target,scenario:webhooks}": ["p(95)<900"]
          "http_req_failed{phase:after:slow-target}": ["rate<0.01"]
    """)
    assert [t.selector for t in plan.thresholds] == [
        "http_req_duration{phase:before}",
        "http_req_duration{phase:during:slow-target,scenario:webhooks}",
        "http_req_failed{phase:after:slow-target}",
    ]


# ---------------------------------------------------------------- profiles, --scenario, validate

PROFILED = """
- name: slow-target
  kind: abort
  at: 20s
  from: ticket-purchase
  duration: 15s
  requests: [checkout]
  recovery: [{metric: http_req_failed, threshold: "rate<0.01", within: 30s, stable: 5s}]
"""


def test_a_profile_scales_at_and_duration(tmp_path, monkeypatch) -> None:
    fault = only(load(tmp_path, monkeypatch, PROFILED, profile="smoke"))
    assert (fault.at, fault.duration) == (10.0, 7.5)
    (budget,) = fault.recovery
    assert (budget.within, budget.stable) == (30.0, 5.0)  # like gracefulStop: not scaled


def test_scenario_selection_drops_faults_anchored_elsewhere(tmp_path, monkeypatch) -> None:
    chaos = PROFILED + """
- name: free
  kind: abort
  duration: 5s
  requests: [checkout]
  recovery:
    - {metric: "http_req_failed{scenario:ticket-purchase}", threshold: "rate<0.01", within: 9s}
    - {metric: "http_req_failed{scenario:webhooks}", threshold: "rate<0.01", within: 9s}
"""
    thresholds = """
        thresholds:
          "http_req_duration{phase:during:slow-target}": ["p(95)<500"]
          "http_req_duration{phase:during:free}": ["p(95)<500"]
          "http_req_duration{phase:before}": ["p(95)<500"]
    """
    plan = load(tmp_path, monkeypatch, chaos, thresholds, scenarios=["webhooks"])
    (free,) = plan.chaos
    assert free.name == "free"
    assert [dict(budget.tags) for budget in free.recovery] == [{"scenario": "webhooks"}]
    assert [t.selector for t in plan.thresholds] == [
        "http_req_duration{phase:during:free}", "http_req_duration{phase:before}"]
    assert len(load(tmp_path, monkeypatch, chaos, thresholds).chaos) == 2


def test_validate_lists_faults_at_run_times(tmp_path, monkeypatch, capsys) -> None:
    chaos = PROFILED + """
- name: proxy
  kind: toxiproxy
  at: 5s
  duration: 10s
  proxy: db
  toxic: {type: latency, attributes: {latency: 500}}
"""
    plan = load(tmp_path, monkeypatch, chaos)
    lines = describe(plan).splitlines()
    start = lines.index("chaos: 2")
    assert lines[start + 1:start + 4] == [
        "      5.0s -    15.0s  proxy  toxiproxy: latency toxic on proxy db (downstream, "
        "toxicity 1) {'latency': 500} via http://127.0.0.1:8474  (plan.yml:11)",
        "     30.0s -    45.0s  slow-target  abort: requests checkout, probability 1  "
        "(plan.yml:3, 20s after ticket-purchase starts)",
        "      recovery: http_req_failed  rate<0.01 within 30s of the end, stable 5s  "
        "(plan.yml:9)",
    ]
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["validate", "plan.yml", "--profile", "smoke"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "     15.0s -    22.5s  slow-target  abort: requests checkout" in out


def test_validate_exits_2_on_a_chaos_mistake(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "- {name: f, kind: abort, duration: 5s, requests: [webhok]}")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["validate", "plan.yml"]) == ExitCode.INVALID
    assert capsys.readouterr().err == (
        "loadaction: plan.yml:3: requests: no flow has a request named 'webhok' "
        "(did you mean 'webhook'?)\n")


def test_chaos_templates_read_setup_vars_but_not_a_vus(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan = """
        target: http://localhost:8080
        setup:
          - group: {name: seed, steps: [{set: {event_id: "1"}}]}
        chaos:
          - {name: f, kind: command, duration: 5s, start: "echo {{ vars.%s }}", stop: "true"}
        flows:
          main: [{request: {url: /}}, {extract: {json: {session: "$.id"}}}]
        scenarios:
          main: {executor: constant-vus, duration: 1s}
    """
    (tmp_path / "plan.yml").write_text(textwrap.dedent(plan % "event_id").lstrip())
    (fault,) = load_plan("plan.yml", env=ENV).chaos
    assert fault.name == "f"
    (tmp_path / "plan.yml").write_text(textwrap.dedent(plan % "session").lstrip())
    with pytest.raises(PlanError) as caught:
        load_plan("plan.yml", env=ENV)
    assert str(caught.value) == ("plan.yml:5: 'vars.session' is not defined for faults "
                                 "(faults see the plan's vars, --var values and vars set "
                                 "in setup, not those a VU sets in a flow)")


def test_chaos_templates_read_vars_setup_extracts_in_a_websocket_on_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The setup-vars walker is the plan's one step walker: it sees inside on_open too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plan.yml").write_text(textwrap.dedent("""
        target: http://localhost:8080
        setup:
          - websocket:
              url: /ws
              on_open:
                - ws_receive: {timeout: 1s}
                - extract: {json: {channel: "$.channel"}}
        chaos:
          - {name: f, kind: command, duration: 5s, start: "echo {{ vars.channel }}", stop: "true"}
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main: {executor: constant-vus, duration: 1s}
    """).lstrip())
    (fault,) = load_plan("plan.yml", env=ENV).chaos
    assert fault.name == "f"
