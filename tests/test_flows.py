"""Flow steps end to end: what each step sends, extracts, records and checks."""

from __future__ import annotations

import json


def _sink(doc, metric, **tags):
    for entry in doc["metrics"][metric]["by_tags"]:
        if all(entry["tags"].get(k) == v for k, v in tags.items()):
            return entry["sink"]
    return None


def test_extract_set_and_templates_feed_later_requests(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 2, iterations: 2, exec: f}}
        flows:
          f:
            - request: {{name: first, url: /json}}
            - extract: {{json: {{item: "$.items[1].name", id: "$.id"}}}}
            - set: {{label: "{{{{ vars.item }}}}-{{{{ vu }}}}-{{{{ iter }}}}", n: "{{{{ vars.id + 1 }}}}"}}
            - request:
                name: echo
                method: POST
                url: /echo
                query: {{label: "{{{{ vars.label }}}}"}}
                json: {{n: "{{{{ vars.n }}}}"}}
            - check: {{json: {{"$.query.label": {{matches: "^b-[12]-[01]$"}}, "$.body": '{{"n":8}}'}}}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    checks = {c["name"]: c for c in doc["checks"]}
    assert all(c["fails"] == 0 and c["passes"] == 4 for c in checks.values()), checks


def test_batch_runs_requests_in_parallel_and_groups_are_tagged(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 2, exec: f}}
        flows:
          f:
            - group:
                name: page
                steps:
                  - batch:
                      - {{name: a, url: "/slow?ms=300"}}
                      - {{name: b, url: "/slow?ms=300"}}
                      - {{name: c, url: "/slow?ms=300"}}
                  - check: {{status: 200, response: b}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    group = _sink(doc, "group_duration", group="::page")
    assert group["count"] == 2
    assert 300 <= group["max"] < 900  # three 300 ms requests side by side, not one after another
    assert _sink(doc, "http_reqs", name="a", group="::page")["count"] == 2


def test_if_step_chooses_a_branch(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        vars: {{flag: ""}}
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 3, exec: f}}
        flows:
          f:
            - if:
                when: "{{{{ iter == 1 or vars.flag }}}}"
                steps: [{{request: {{url: /json}}}}]
                else: [{{request: {{url: /ok}}}}]
    """)
    assert run_plan(plan)[0] == 0
    assert target.hits["/json"] == 1 and target.hits["/ok"] == 2


def test_counters_get_zero_samples_when_a_step_counts_nothing(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        metrics: {{missing: counter, sold_out: counter, valid: counter}}
        thresholds:
          missing: ["count==0"]
          sold_out: ["count==0"]
          valid: ["count==3"]
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 3, exec: f}}
        flows:
          f:
            - request: {{url: /json}}
            - record: {{json: "$.result", map: {{valid: valid, nope: missing}}}}
            - record: {{metric: sold_out, when: "{{{{ response.status == 409 }}}}"}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert [t["verdict"] for t in doc["thresholds"]] == ["pass", "pass", "pass"]


def test_unique_data_is_used_once_and_exhaustion_is_reported(target, write_plan, run_plan, tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps([{"ticket": f"T-{i}"} for i in range(5)]))
    plan = write_plan(f"""
        target: {target.url}
        data:
          rows: {{file: rows.json, mode: unique}}
        metrics: {{valid: counter, again: counter}}
        scenarios:
          s: {{executor: shared-iterations, vus: 3, iterations: 8, exec: f}}
        flows:
          f:
            - request: {{method: POST, url: /scan, json: {{ticket: "{{{{ data.rows.ticket }}}}"}}}}
            - record: {{json: "$.result", map: {{valid: valid, already_scanned: again}}}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert _sink(doc, "valid")["count"] == 5 and _sink(doc, "again")["count"] == 0
    assert target.hits["/scan"] == 5
    assert any("data 'rows' exhausted after 5 rows" in n for n in doc["notices"])


def test_a_failing_step_ends_the_iteration_with_a_counted_error(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 3, exec: f}}
        flows:
          f:
            - request: {{url: /ok}}
            - extract: {{json: {{id: "$.id"}}}}
            - request: {{url: /json}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert target.hits["/json"] == 0
    assert doc["errors"][0]["count"] == 3
    assert "extract 'id': JSON path $.id not found" in doc["errors"][0]["message"]


def test_setup_output_is_shared_and_teardown_runs(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        setup:
          - request: {{url: "/json?result=seeded"}}
          - extract: {{json: {{seed: "$.result"}}}}
        teardown:
          - request: {{url: "/echo?seed={{{{ vars.seed }}}}"}}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 2, exec: f}}
        flows:
          f:
            - request: {{url: "/echo?seed={{{{ vars.seed }}}}"}}
            - check: {{json: {{"$.query.seed": seeded}}}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert target.hits["/echo"] == 3  # two VUs and the teardown
    assert doc["checks"][0]["passes"] == 2


def test_failed_setup_stops_the_run_with_exit_3(target, write_plan, run_plan, capsys):
    plan = write_plan(f"""
        target: {target.url}
        setup:
          - request: {{url: /status/500}}
          - check: {{status: 200}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 3
    assert doc["status"] == "failed" and "setup failed" in doc["status_reason"]
    assert target.hits["/ok"] == 0
