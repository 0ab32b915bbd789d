"""WebSocket steps in flows end to end: what is sent, what a ws_receive takes
(or times out on), subscriptions working in the background while the VU
makes HTTP requests, and sessions kept across iterations, reopened after
the server closed them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ws_servers import WsServer, count, serve


@pytest.fixture
def ws_server() -> Iterator[WsServer]:
    with serve() as server:
        yield server


def test_templated_messages_and_a_fresh_ref_for_each(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        vars: {{payload: "aGVsbG8gd29ybGQ="}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - websocket: {{name: phx, url: /phoenix}}
            - ws_send:
                json: {{topic: "room:{{{{ vu }}}}", event: phx_join, ref: "{{{{ ws.ref }}}}",
                        join_ref: "{{{{ ws.ref }}}}", payload: {{n: "{{{{ iter + 1 }}}}"}}}}
            - ws_receive: {{name: joined, until: {{"$.event": phx_reply}}, timeout: 10s}}
            - ws_send: {{text: '{{"event": "x", "ref": "{{{{ ws.ref }}}}"}}'}}
            - check: {{json: {{"$.payload.status": ok, "$.ref": "1"}}, response: joined}}
            - websocket: {{name: echo, url: /echo}}
            - ws_send: {{session: echo, binary: "{{{{ vars.payload }}}}"}}
            - ws_receive: {{session: echo, timeout: 10s}}
            - check: {{body: hello world}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    phoenix = [m for path, m in ws_server.stats.messages if path == "/phoenix"]
    assert phoenix == [
        {"topic": "room:1", "event": "phx_join", "ref": "1", "join_ref": "1", "payload": {"n": 1}},
        {"event": "x", "ref": "2"},
    ]
    assert [m for path, m in ws_server.stats.messages if path == "/echo"] == [b"hello world"]
    assert all(c["fails"] == 0 for c in doc["checks"]) and len(doc["checks"]) == 3


def test_a_receive_that_times_out_is_a_counted_error_and_the_vu_goes_on(ws_server, write_plan,
                                                                        run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 3, exec: f}}
        flows:
          f:
            - websocket: {{name: echo, url: /echo}}
            - ws_send: {{text: "not what it waits for"}}
            - ws_receive: {{until: {{body: never}}, timeout: 200ms}}
            - request: {{url: /ok}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert count(doc, "ws_errors", error="receive_timeout") == 3
    [error] = doc["errors"]
    assert error["count"] == 3 and error["kind"] == "timeout"
    assert error["message"].endswith("no message matching until within 0.2s")
    assert ws_server.stats.received["/echo"] == 3  # every iteration ran
    assert count(doc, "http_reqs") == 0  # and ended at its receive
    assert count(doc, "ws_session_duration") == 3  # each closed at its iteration's end


def test_a_subscription_works_while_the_vu_makes_requests(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        metrics: {{changes: counter, last_seen: counter}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - websocket:
                name: updates
                url: /updates
                on_open:
                  - ws_subscribe:
                      name: changes
                      where: {{"$.event": change}}
                      steps:
                        - check: {{json: {{"$.record.id": {{matches: "^key-"}}}}}}
                        - extract: {{json: {{last_id: "$.record.id"}}}}
                        - record: {{metric: changes}}
            - group:
                name: writes
                steps:
                  - request: {{name: write, method: POST, url: /write}}
                  - request: {{url: /ok}}
                  - request: {{name: write, method: POST, url: /write}}
                  - request: {{url: /ok}}
                  - request: {{name: write, method: POST, url: /write}}
            - ws_receive: {{until: {{"$.record.id": key-3}}, timeout: 10s}}
            - record: {{metric: last_seen, when: "{{{{ vars.last_id == 'key-3' }}}}"}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    assert count(doc, "changes") == 3  # every update, while the VU was busy with HTTP
    assert count(doc, "last_seen") == 1  # the subscription's extract set the VU's var
    [check] = doc["checks"]
    assert (check["passes"], check["fails"], check["group"]) == (3, 0, "")
    assert count(doc, "http_reqs", group="::writes") == 5


def test_keep_vu_reuses_the_session_and_reopens_it_after_the_server_closed_it(
        ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 4, exec: f}}
        flows:
          f:
            - websocket:
                name: phx
                url: /phoenix
                keep: vu
                on_open:
                  - ws_send: {{json: {{topic: "room:a", event: phx_join, ref: "{{{{ ws.ref }}}}"}}}}
                  - ws_receive: {{until: {{"$.event": phx_reply}}, timeout: 10s}}
            - ws_send: {{json: {{topic: "room:a", event: note, ref: "{{{{ ws.ref }}}}",
                                 iter: "{{{{ iter }}}}"}}}}
            - if:
                when: "{{{{ iter == 1 }}}}"
                steps:
                  - ws_send: {{text: close 4001}}
                  - ws_receive: {{timeout: 10s}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    joins = [m for _, m in ws_server.stats.messages if m.get("event") == "phx_join"]
    notes = [m for _, m in ws_server.stats.messages if m.get("event") == "note"]
    assert len(joins) == 2  # opened in the first iteration, reopened in the third
    assert [n["iter"] for n in notes] == [0, 1, 2, 3]
    assert [n["ref"] for n in notes] == ["2", "3", "2", "3"]  # a new session counts anew
    assert count(doc, "ws_sessions", status="101") == 2
    assert count(doc, "ws_errors", error="closed") == 1
    assert count(doc, "ws_session_duration") == 2
    messages = sorted(e["message"] for e in doc["errors"])
    assert any(m.endswith("closed by the server (code 4001: asked to)") for m in messages)
    assert any(m.endswith("ended while a ws_receive waited") for m in messages)
    assert doc["scenarios"][0]["iterations"] == 4


def test_sessions_of_arrival_rate_vus_close_at_the_scenario_end(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: constant-arrival-rate, rate: 10, duration: 500ms, preAllocatedVUs: 1,
              maxVUs: 1, exec: f}}
        flows:
          f:
            - websocket: {{name: echo, url: /echo, keep: vu}}
            - ws_send: {{text: "{{{{ iter }}}}"}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    iterations = doc["scenarios"][0]["iterations"]
    assert iterations >= 1
    assert count(doc, "ws_sessions") == 1  # one VU, one session for all its iterations
    assert count(doc, "ws_msgs_sent") == iterations == ws_server.stats.received["/echo"]
    assert count(doc, "ws_session_duration") == 1  # closed when the scenario ended


def test_setup_may_use_a_session(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        setup:
          - websocket: {{name: echo, url: /echo}}
          - ws_send: {{json: {{token: t-42}}}}
          - ws_receive: {{timeout: 10s}}
          - extract: {{json: {{token: "$.token"}}}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - request: {{url: "/ok?token={{{{ vars.token }}}}"}}
            - check: {{status: 200}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    assert count(doc, "ws_sessions", scenario="setup") == 1
    assert count(doc, "ws_session_duration", scenario="setup") == 1


def test_steps_on_a_closed_session_fail_the_iteration(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 2, exec: f}}
        flows:
          f:
            - websocket: {{name: echo, url: /echo}}
            - ws_close: {{}}
            - ws_close: {{}}
            - ws_send: {{text: late}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    [error] = doc["errors"]
    assert (error["message"], error["kind"], error["count"]) == (
        "ws session 'echo' is not open", "disconnect", 2)
    assert ws_server.stats.received["/echo"] == 0
    assert count(doc, "ws_session_duration") == 2


def test_a_subscription_sees_what_arrived_while_on_open_was_joining(ws_server, write_plan,
                                                                   run_plan):
    """The server pushes three messages at once; the first is taken by a
    ws_receive, and the subscription that comes after it still gets the
    other two (kept by the session, or live), once each."""
    plan = write_plan(f"""
        target: {ws_server.url}
        metrics: {{seen: counter}}
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 3, exec: f}}
        flows:
          f:
            - websocket:
                name: pushed
                url: "/hello?n=3"
                on_open:
                  - ws_receive: {{until: {{body: hello 0}}, timeout: 10s}}
                  - ws_subscribe:
                      name: rest
                      steps: [{{record: {{metric: seen}}}}]
            - ws_send: {{text: last}}
            - ws_receive: {{until: {{body: last}}, timeout: 10s}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    assert count(doc, "seen") == 3 * 3  # hello 1, hello 2 and the echoed "last"
