"""Every kind of plan mistake is one PlanError, `file:line: message (hint)`,
raised before anything runs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from loadaction.errors import ExitCode, PlanError
from loadaction.plan import load_plan
from loadaction.plan.model import Limits

ENV = {"API_KEY": "k", "BASE_URL": "http://localhost:8080"}

# Indented like the plans below, so that a plan and these dedent together.
FLOW = """
        flows:
          main:
            - request: {url: /}
"""
SCENARIO = """
        scenarios:
          main: {executor: constant-vus, duration: 1s}
"""


def d(*parts: str) -> str:
    return textwrap.dedent("".join(parts)).lstrip("\n")


def load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: str,
               files: dict[str, str] | None = None, **options: Any) -> str:
    """Load plan.yml (and companion files) from a scratch directory; return
    the error text, which names files relative to that directory."""
    monkeypatch.chdir(tmp_path)
    for name, text in {"plan.yml": plan, **(files or {})}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    options.setdefault("env", ENV)
    with pytest.raises(PlanError) as caught:
        load_plan("plan.yml", **options)
    assert caught.value.exit_code == ExitCode.INVALID
    return str(caught.value)


CASES: list[tuple[str, str, dict[str, str], str]] = [
    ("yaml syntax", """
        target: http://localhost
        flows:
          main: [{request: {url: /}
        scenarios: {}
     """, {}, "plan.yml:4: invalid YAML: expected ',' or '}', but got '<scalar>'"),
    ("duplicate key", """
        target: http://localhost
        target: http://localhost
     """, {}, "plan.yml:2: duplicate key 'target'"),
    ("empty plan", "", {}, "plan.yml:1: plan: expected a mapping, got nothing"),
    ("unknown top-level key", """
        target: http://localhost
        flow: {}
     """, {}, "plan.yml:2: unknown key 'flow' at the top level (did you mean 'flows'?)"),
    ("misspelt executor key", """
        target: http://localhost
        flows:
          purchase: [{request: {url: /}}]
        scenarios:
          purchase:
            executer: constant-vus
            duration: 1s
     """, {}, "plan.yml:6: unknown key 'executer' in scenario 'purchase' "
              "(did you mean 'executor'?)"),
    ("option of another executor", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-vus
            duration: 1s
            stages: []
     """, {}, "plan.yml:8: unknown key 'stages' in scenario 'main' "
              "('stages' is not an option of constant-vus)"),
    ("unknown executor", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main: {executor: constant-vu, duration: 1s}
     """, {}, "plan.yml:5: executor: unknown value 'constant-vu' (expected one of: "
              "constant-vus, ramping-vus, per-vu-iterations, shared-iterations, "
              "constant-arrival-rate, ramping-arrival-rate) (did you mean 'constant-vus'?)"),
    ("wrong type", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-vus
            vus: "ten"
            duration: 1s
     """, {}, "plan.yml:7: vus: expected an integer, got 'ten'"),
    ("bad duration", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-vus
            duration: 10 sec
     """, {}, "plan.yml:7: duration: invalid duration '10 sec' (expected seconds, "
              "or e.g. 500ms, 30s, 2m, 1h30m)"),
    ("negative number", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: ramping-vus
            startVUs: -1
            stages: [{duration: 1s, target: 1}]
     """, {}, "plan.yml:7: startVUs: must not be negative, got -1"),
    ("negative duration", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-vus
            duration: 1s
            startTime: -5
     """, {}, "plan.yml:8: startTime: must not be negative, got -5"),
    ("zero rate", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-arrival-rate
            rate: 0
            duration: 1s
            preAllocatedVUs: 1
     """, {}, "plan.yml:7: rate: must be greater than 0, got 0"),
    ("required option missing", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-arrival-rate
            rate: 10
            duration: 1m
     """, {}, "plan.yml:5: missing required key 'preAllocatedVUs' in scenario 'main'"),
    ("empty stages", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: ramping-vus
            stages: []
     """, {}, "plan.yml:7: stages: expected at least one stage"),
    ("maxVUs below preAllocatedVUs", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-arrival-rate
            rate: 10
            duration: 1m
            preAllocatedVUs: 20
            maxVUs: 5
     """, {}, "plan.yml:10: maxVUs (5) must not be less than preAllocatedVUs (20)"),
    ("exec names a missing flow", """
        target: http://localhost
        flows:
          purchase: [{request: {url: /}}]
        scenarios:
          buy:
            executor: constant-vus
            duration: 1s
            exec: purchse
     """, {}, "plan.yml:8: scenario 'buy' runs flow 'purchse', which is not defined "
              "(did you mean 'purchase'?)"),
    ("default exec has no flow", """
        target: http://localhost
        flows:
          purchase: [{request: {url: /}}]
        scenarios:
          scanner: {executor: constant-vus, duration: 1s}
     """, {}, "plan.yml:5: scenario 'scanner' runs flow 'scanner', which is not defined "
              "(set 'exec' to the flow this scenario runs)"),
    ("no scenarios", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
     """, {}, "plan.yml:1: the plan has no scenarios"),
    ("bad threshold expression", """
        target: http://localhost
        thresholds:
          http_req_duration: ["p(95)<<500"]
     """ + FLOW + SCENARIO, {},
     "plan.yml:3: invalid threshold 'p(95)<<500': expected a number after '<'"),
    ("unknown metric in thresholds", """
        target: http://localhost
        thresholds:
          http_req_duraton: ["p(95)<500"]
     """ + FLOW + SCENARIO, {}, "plan.yml:3: unknown metric 'http_req_duraton' in thresholds "
                                "(did you mean 'http_req_duration'?)"),
    ("aggregation the metric does not have", """
        target: http://localhost
        thresholds:
          http_req_failed:
            - threshold: "p(95)<0.01"
              abortOnFail: true
     """ + FLOW + SCENARIO, {}, "plan.yml:4: threshold 'p(95)<0.01': rate metric "
                                "'http_req_failed' has no 'p(N)' (use rate)"),
    ("aggregation of a custom metric", """
        target: http://localhost
        metrics: {scans: counter}
        thresholds:
          scans: ["avg>1"]
     """ + FLOW + SCENARIO, {}, "plan.yml:4: threshold 'avg>1': counter metric 'scans' has "
                                "no 'avg' (use count, rate)"),
    ("bad threshold selector", """
        target: http://localhost
        thresholds:
          "http_req_duration{scenario:a": ["p(95)<500"]
     """ + FLOW + SCENARIO, {}, "plan.yml:3: invalid metric selector "
                                "'http_req_duration{scenario:a': missing closing '}'"),
    ("threshold on an unknown scenario", """
        target: http://localhost
        thresholds:
          "checks{scenario:mian}": ["rate>0.99"]
     """ + FLOW + SCENARIO, {}, "plan.yml:3: unknown scenario 'mian' in thresholds "
                                "(did you mean 'main'?)"),
    ("unknown threshold option", """
        target: http://localhost
        thresholds:
          http_reqs:
            - {threshold: "count>1", abortOnFial: true}
     """ + FLOW + SCENARIO, {}, "plan.yml:4: unknown key 'abortOnFial' in threshold "
                                "(did you mean 'abortOnFail'?)"),
    ("scenario threshold on an unknown metric", """
        target: http://localhost
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-vus
            duration: 1s
            thresholds:
              checkz: ["rate>0.9"]
     """, {}, "plan.yml:9: unknown metric 'checkz' in thresholds (did you mean 'checks'?)"),
    ("unknown metric kind", """
        target: http://localhost
        metrics:
          scans: countr
     """ + FLOW + SCENARIO, {}, "plan.yml:3: metric 'scans': unknown value 'countr' (expected "
                                "one of: counter, rate, trend, gauge) (did you mean 'counter'?)"),
    ("metric shadows a built-in", """
        target: http://localhost
        metrics:
          vus: gauge
     """ + FLOW + SCENARIO, {}, "plan.yml:3: metric 'vus' is built in; choose another name"),
    ("record names an undeclared metric", """
        target: http://localhost
        metrics: {checkout_errors: rate}
        flows:
          main:
            - request: {url: /}
            - record: {metric: checkout_eror, value: "{{ response.status != 200 }}"}
     """ + SCENARIO, {}, "plan.yml:6: metric: metric 'checkout_eror' is not declared under "
                         "metrics (did you mean 'checkout_errors'?)"),
    ("record map target is not a counter", """
        target: http://localhost
        metrics: {valid: counter, invalid: rate}
        flows:
          main:
            - request: {url: /}
            - record:
                json: $.result
                map: {valid: valid, invalid: invalid}
     """ + SCENARIO, {}, "plan.yml:8: map: 'invalid' is a rate; mapped metrics must be "
                         "counters"),
    ("misspelt record key", """
        target: http://localhost
        metrics: {scans: counter}
        flows:
          main:
            - request: {url: /}
            - record: {metrc: scans}
     """ + SCENARIO, {}, "plan.yml:6: unknown key 'metrc' in record (did you mean 'metric'?)"),
    ("record mixing both forms", """
        target: http://localhost
        metrics: {scans: counter}
        flows:
          main:
            - request: {url: /}
            - record: {metric: scans, map: {a: scans}}
     """ + SCENARIO, {}, "plan.yml:6: unknown key 'map' in record with 'metric'"),
    ("record into a trend without a value", """
        target: http://localhost
        metrics: {took: trend}
        flows:
          main:
            - request: {url: /}
            - record: {metric: took}
     """ + SCENARIO, {}, "plan.yml:6: record: 'took' is a trend, so it needs a 'value'"),
    ("unknown step", """
        target: http://localhost
        flows:
          main:
            - reqest: {url: /}
     """ + SCENARIO, {}, "plan.yml:4: unknown step 'reqest' (did you mean 'request'?)"),
    ("step with two keys", """
        target: http://localhost
        flows:
          main:
            - request: {url: /}
              check: {status: 200}
     """ + SCENARIO, {}, "plan.yml:4: step: expected a mapping with exactly one key, got "
                         "'request', 'check'"),
    ("unknown request key", """
        target: http://localhost
        flows:
          main:
            - request:
                url: /
                jsn: {a: 1}
     """ + SCENARIO, {}, "plan.yml:6: unknown key 'jsn' in request (did you mean 'json'?)"),
    ("request without url", """
        target: http://localhost
        flows:
          main:
            - request: {method: POST}
     """ + SCENARIO, {}, "plan.yml:4: missing required key 'url' in request"),
    ("request with two bodies", """
        target: http://localhost
        flows:
          main:
            - request:
                url: /
                json: {a: 1}
                body: "a=1"
     """ + SCENARIO, {}, "plan.yml:7: request has both 'json' and 'body'; use one"),
    ("unknown method", """
        target: http://localhost
        flows:
          main:
            - request: {url: /, method: FETCH}
     """ + SCENARIO, {}, "plan.yml:4: method: unknown HTTP method 'FETCH' (expected one of: "
                         "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS)"),
    ("expect outside HTTP statuses", """
        target: http://localhost
        flows:
          main:
            - request:
                url: /
                expect: [200, 4090]
     """ + SCENARIO, {}, "plan.yml:6: expect: 4090 is not an HTTP status (100-599)"),
    ("check names a request the flow lacks", """
        target: http://localhost
        flows:
          main:
            - request: {name: checkout, url: /checkout}
            - check:
                response: chekout
                status: 200
     """ + SCENARIO, {}, "plan.yml:6: response: flow 'main' has no request named 'chekout' "
                         "(did you mean 'checkout'?)"),
    ("extract names a request the flow lacks", """
        target: http://localhost
        flows:
          main:
            - batch:
                - {name: events, url: /events}
            - extract: {response: tickets, json: {id: $.id}}
     """ + SCENARIO, {}, "plan.yml:6: response: flow 'main' has no request named 'tickets'"),
    ("bad JSON path in a check", """
        target: http://localhost
        flows:
          main:
            - request: {url: /}
            - check:
                json: {"$.a[": {exists: true}}
     """ + SCENARIO, {}, "plan.yml:6: invalid JSON path '$.a[': Parse error near the end of "
                         "string!"),
    ("bad regex in a check", """
        target: http://localhost
        flows:
          main:
            - request: {url: /}
            - check:
                body: {matches: "session_("}
     """ + SCENARIO, {}, "plan.yml:6: matches: invalid regular expression 'session_(': "
                         "missing ), unterminated subpattern at position 8"),
    ("unknown matcher", """
        target: http://localhost
        flows:
          main:
            - request: {url: /}
            - check:
                header: {content-type: {contain: json}}
     """ + SCENARIO, {}, "plan.yml:6: header content-type: unknown matcher 'contain' (expected "
                         "one of: in, exists, contains, matches) (did you mean 'contains'?)"),
    ("status compared with text", """
        target: http://localhost
        flows:
          main:
            - request: {url: /}
            - check: {status: "200"}
     """ + SCENARIO, {}, "plan.yml:5: status: expected HTTP status codes, got '200'"),
    ("empty check", """
        target: http://localhost
        flows:
          main:
            - request: {url: /}
            - check: {name: nothing}
     """ + SCENARIO, {}, "plan.yml:5: check has no conditions (expected status, header, json "
                         "or body)"),
    ("think range upside down", """
        target: http://localhost
        flows:
          main:
            - think: {min: 2s, max: 1s}
     """ + SCENARIO, {}, "plan.yml:4: max: must not be shorter than min (2s)"),
    ("unknown name in a template", """
        target: http://localhost
        flows:
          main:
            - request: {url: "/events/{{ var.id }}"}
     """ + SCENARIO, {}, "plan.yml:4: unknown name 'var' in template (did you mean 'vars'?)"),
    ("undefined var", """
        target: http://localhost
        vars: {event_id: 1}
        flows:
          main:
            - request: {url: "/events/{{ vars.evnt_id }}"}
     """ + SCENARIO, {}, "plan.yml:5: 'vars.evnt_id' is not defined (did you mean 'event_id'?)"),
    ("undeclared secret", """
        target: http://localhost
        flows:
          main:
            - request:
                url: /
                headers: {apikey: "{{ secrets.API_KEY }}"}
     """ + SCENARIO, {}, "plan.yml:6: 'secrets.API_KEY' is not declared (list it under secrets)"),
    ("undeclared data source", """
        target: http://localhost
        flows:
          main:
            - request:
                url: /scan
                json: {id: "{{ data.tickets.id }}"}
     """ + SCENARIO, {}, "plan.yml:6: 'data.tickets' is not a data source (declare it under data)"),
    ("template syntax error", """
        target: http://localhost
        flows:
          main:
            - request:
                url: /
                json:
                  id: "{{ vars.id }"
     """ + SCENARIO, {}, "plan.yml:7: template syntax error: unexpected '}'"),
    ("unsafe attribute", """
        target: http://localhost
        vars:
          x: "{{ ''.__class__.__mro__ }}"
     """ + FLOW + SCENARIO, {}, "plan.yml:3: template uses unsafe attribute '__mro__'"),
    ("missing data file", """
        target: http://localhost
        data:
          tickets: {file: data/tickets.json}
     """ + FLOW + SCENARIO, {}, "plan.yml:3: data 'tickets': cannot read data/tickets.json: "
                                "No such file or directory"),
    ("data file that is not JSON", """
        target: http://localhost
        data:
          tickets:
            file: tickets.json
     """ + FLOW + SCENARIO, {"tickets.json": '[{"id": 1},\n {"id": 2,}]'},
     "plan.yml:4: data 'tickets': tickets.json: invalid JSON at line 2: "
     "Expecting property name enclosed in double quotes"),
    ("data file that is not a list of objects", """
        target: http://localhost
        data:
          tickets: {file: tickets.json}
     """ + FLOW + SCENARIO, {"tickets.json": '{"id": 1}'},
     "plan.yml:3: data 'tickets': tickets.json: expected a JSON list of objects"),
    ("ragged CSV", """
        target: http://localhost
        data:
          scanners: {file: scanners.csv}
     """ + FLOW + SCENARIO, {"scanners.csv": "id,name\n1,a\n2\n"},
     "plan.yml:3: data 'scanners': scanners.csv: line 3 has 1 fields, the header has 2"),
    ("empty unique data", """
        target: http://localhost
        data:
          tickets:
            file: tickets.json
            mode: unique
     """ + FLOW + SCENARIO, {"tickets.json": "[]"},
     "plan.yml:4: data 'tickets' has no rows (mode unique needs at least one)"),
    ("unknown data mode", """
        target: http://localhost
        data:
          tickets:
            file: tickets.json
            mode: uniq
     """ + FLOW + SCENARIO, {"tickets.json": "[{}]"},
     "plan.yml:5: mode: unknown value 'uniq' (expected one of: unique, sequential, random) "
     "(did you mean 'unique'?)"),
    ("duplicate flow across includes", """
        target: http://localhost
        include: [more/flows.yml]
        flows:
          main: [{request: {url: /}}]
     """ + SCENARIO, {"more/flows.yml": """
        flows:
          other: [{request: {url: /other}}]
          main: [{request: {url: /again}}]
     """}, "more/flows.yml:3: flow 'main' is already defined at plan.yml:4"),
    ("duplicate scenario across includes", """
        target: http://localhost
        include: [a.yml]
     """ + FLOW + SCENARIO, {"a.yml": """
        scenarios:
          main: {executor: constant-vus, duration: 1s}
     """}, "a.yml:2: scenario 'main' is already defined at plan.yml:9"),
    ("include cycle", """
        target: http://localhost
        include: [a.yml]
     """ + FLOW + SCENARIO, {"a.yml": "include: [b.yml]\n", "b.yml": "include: [a.yml]\n"},
     "b.yml:1: include cycle: a.yml -> b.yml -> a.yml"),
    ("missing include", """
        target: http://localhost
        include:
          - nothere.yml
     """ + FLOW + SCENARIO, {}, "plan.yml:3: cannot read nothere.yml: No such file or directory"),
    ("key not allowed in an include", """
        target: http://localhost
        include: [a.yml]
     """ + FLOW + SCENARIO, {"a.yml": "flows: {}\ntarget: http://other\n"},
     "a.yml:2: unknown key 'target' in included file a.yml"),
    ("missing secret", """
        target: http://localhost
        secrets:
          - API_KEY
          - STRIPE_SECRET
     """ + FLOW + SCENARIO, {}, "plan.yml:4: secret 'STRIPE_SECRET' is not set in the "
                                "environment (export STRIPE_SECRET)"),
    ("target without a scheme", """
        target: localhost:8080
     """ + FLOW + SCENARIO, {}, "plan.yml:1: target: expected an http(s) URL with a host, got "
                                "'localhost:8080'"),
    ("target from an unset variable", """
        target: "{{ env.SUPABASE_URL }}"
     """ + FLOW + SCENARIO, {}, "plan.yml:1: target: environment variable 'SUPABASE_URL' is "
                                "not set (export SUPABASE_URL or pass --target)"),
    ("target using more than env", """
        target: "{{ vars.url }}"
        vars: {url: http://localhost}
     """ + FLOW + SCENARIO, {}, "plan.yml:1: unknown name 'vars' in template (templates here "
                                "can use env)"),
    ("no target", d(FLOW, SCENARIO), {}, "plan.yml:1: the plan has no target (add 'target:' to "
                                       "the plan or pass --target)"),
    ("literal URL to a host that is not allowed", """
        target: http://localhost:8080
        allowedHosts: [api.stripe.test]
        flows:
          main:
            - request: {url: /}
            - request: {url: "https://api.stripe.test/v1/x"}
            - request: {url: "https://{{ vars.host }}/dynamic/is/checked/later"}
            - request: {url: "https://evil.test/v1/x?id={{ vu }}"}
        vars: {host: elsewhere.test}
     """ + SCENARIO, {}, "plan.yml:8: url: host 'evil.test' is not in the allowed hosts "
                         "(add it to allowedHosts or pass --allow-host)"),
    ("profile overrides an unknown scenario", """
        target: http://localhost
        profiles:
          smoke:
            scenarios:
              mian: {vus: 1}
     """ + FLOW + SCENARIO, {}, "plan.yml:5: profile 'smoke' overrides unknown scenario 'mian' "
                                "(did you mean 'main'?)"),
    ("bad scale factor", """
        target: http://localhost
        profiles:
          smoke:
            scale: {vus: 0}
     """ + FLOW + SCENARIO, {}, "plan.yml:4: vus: must be greater than 0, got 0"),
]


@pytest.mark.parametrize(("plan", "files", "expected"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_mistake_is_one_located_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           plan: str, files: dict[str, str],
                                           expected: str) -> None:
    assert load_error(tmp_path, monkeypatch, plan, files) == expected


def test_a_profile_override_is_validated_at_its_own_line(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plan = """
        target: http://localhost
        profiles:
          smoke:
            scenarios:
              main: {vus: "two"}
    """ + FLOW + SCENARIO
    assert load_error(tmp_path, monkeypatch, plan, profile="smoke") == (
        "plan.yml:5: vus: expected an integer, got 'two'")


@pytest.mark.parametrize(("options", "expected"), [
    ({"scenarios": ["mian"]}, "unknown scenario 'mian' (choices: main, other) "
                              "(did you mean 'main'?)"),
    ({"profile": "smok"}, "unknown profile 'smok' (choices: smoke) (did you mean 'smoke'?)"),
    ({"target": "ftp://files.test"}, "--target: expected an http(s) URL with a host, got "
                                     "'ftp://files.test'"),
    ({"extra_allowed_hosts": ["https://x.test/"]}, "allowed host: expected a host or "
                                                  "host:port, got 'https://x.test/'"),
    ({"limits": Limits(max_duration=60)}, "plan.yml:11: the plan needs 100s but --max-duration "
                                          "is 60s (use a shorter --profile or raise "
                                          "--max-duration)"),
])
def test_command_line_mistakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               options: dict[str, Any], expected: str) -> None:
    plan = """
        target: http://localhost
        profiles:
          smoke: {scale: {duration: 0.1}}
        flows:
          main: [{request: {url: /}}]
        scenarios:
          main:
            executor: constant-vus
            duration: 10s
            gracefulStop: 0s
          other:
            executor: per-vu-iterations
            exec: main
            startTime: 20s
            maxDuration: 50s
    """
    assert load_error(tmp_path, monkeypatch, plan, **options) == expected


LIVE = "sk_live_0123456789abcdef"


@pytest.mark.parametrize(("plan", "options", "expected"), [
    ("""
        target: http://localhost
        secrets: [STRIPE_KEY]
     """, {"env": {"STRIPE_KEY": LIVE}}, "plan.yml:2: secret 'STRIPE_KEY' holds a live Stripe key"),
    ("""
        target: http://localhost
        vars:
          keys: {stripe: rk_live_abc}
     """, {}, "plan.yml:3: var 'keys' holds a live Stripe key"),
    ("""
        target: http://localhost
        vars: {stripe: "{{ env.STRIPE_KEY }}"}
     """, {"env": {"STRIPE_KEY": LIVE}},
     "plan.yml:2: environment variable 'STRIPE_KEY' holds a live Stripe key"),
    ("""
        target: http://localhost
     """, {"vars": {"stripe": LIVE}}, "--var stripe holds a live Stripe key"),
])
def test_live_keys_are_refused_without_showing_them(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, plan: str,
                                                   options: dict[str, Any],
                                                   expected: str) -> None:
    message = load_error(tmp_path, monkeypatch, d(plan, FLOW, SCENARIO), **options)
    assert message == expected + " (pass --allow-live-keys to load-test with live keys)"
    assert "_live_" not in message.split(" holds")[0]
    load_plan("plan.yml", limits=Limits(allow_live_keys=True), **options)


def test_a_profile_when_the_plan_has_none(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    plan = d("""
        target: http://localhost
    """, FLOW, SCENARIO)
    assert load_error(tmp_path, monkeypatch, plan, profile="smoke") == (
        "unknown profile 'smoke': the plan defines no profiles")


def test_a_missing_plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PlanError) as caught:
        load_plan("nothere.yml", env={})
    assert str(caught.value) == "cannot read nothere.yml: No such file or directory"
