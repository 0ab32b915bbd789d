"""k6's WebSocket metrics against real servers on 127.0.0.1 whose message
counts are known: exact counts for sessions and messages, timings present
with the right counts and in a plausible order, and every kind of trouble
a counted error of the run, never a crash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ws_servers import WsServer, count, serve


@pytest.fixture
def ws_server() -> Iterator[WsServer]:
    with serve() as server:
        yield server


def test_each_metric_of_an_echo_session(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 2, iterations: 3, exec: f}}
        flows:
          f:
            - websocket: {{name: echo, url: /echo, ping: 100ms}}
            - ws_send: {{text: "hello {{{{ vu }}}}"}}
            - ws_receive: {{until: {{body: {{contains: hello}}}}, timeout: 10s}}
            - ws_send: {{json: {{n: "{{{{ iter }}}}"}}}}
            - ws_receive: {{until: {{"$.n": {{exists: true}}}}, timeout: 10s}}
            - ws_send: {{binary: aGk=}}
            - ws_receive: {{until: {{body: hi}}, timeout: 10s}}
            - think: 300ms
            - ws_receive: {{until: {{body: two pings}}, timeout: 30s}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    sessions = 6
    assert count(doc, "ws_sessions", name="echo", status="101") == sessions
    assert count(doc, "ws_sessions") == sessions
    assert count(doc, "ws_msgs_sent", name="echo") == 3 * sessions
    assert count(doc, "ws_msgs_received", name="echo") == 4 * sessions  # 3 echoes, two pings
    assert ws_server.stats.received["/echo"] == 3 * sessions
    assert count(doc, "ws_connecting", status="101") == sessions
    duration = doc["metrics"]["ws_session_duration"]["total"]
    assert duration["count"] == sessions
    assert duration["min"] >= 300  # open through the flow's 300 ms think, at least
    ping = doc["metrics"]["ws_ping"]["total"]
    # the server pongs the second ping before it says `two pings`: every
    # session timed at least one round trip before it went on
    assert ping["count"] >= sessions
    assert ping["max"] <= duration["min"]
    connecting = doc["metrics"]["ws_connecting"]["total"]
    assert 0 < connecting["max"] < duration["min"]
    # every error value has data (so `count==0` is judged on it), none counts
    errors = {entry["tags"]["error"]: entry["sink"]["count"]
              for entry in doc["metrics"]["ws_errors"]["by_tags"]}
    assert set(errors) == {"connect", "handshake", "handshake_timeout", "closed", "protocol",
                           "receive_timeout", "heartbeat"}
    assert sum(errors.values()) == 0
    # bytes: the upgrade plus 6 masked frames a session, payloads exact
    sent = count(doc, "data_sent", name="echo")
    assert sent > sessions * (len("hello 1") + len('{"n":"0"}') + 2 + 3 * 6)
    assert count(doc, "data_received", name="echo") > sessions * (len("hello 1") + 2 + 129)
    # the server got exactly what was rendered
    texts = sorted(data for path, data in ws_server.stats.messages if isinstance(data, str))
    assert texts.count("hello 1") == 3 and texts.count("hello 2") == 3
    assert sorted(t for t in texts if t.startswith("{")) == ['{"n":0}'] * 2 + ['{"n":1}'] * 2 + ['{"n":2}'] * 2
    assert [data for _, data in ws_server.stats.messages if isinstance(data, bytes)] == [b"hi"] * 6


def test_messages_the_server_pushes_are_counted(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 1, iterations: 4, exec: f}}
        flows:
          f:
            - websocket: {{name: pushed, url: "/hello?n=3"}}
            - ws_receive: {{until: {{body: "hello 2"}}, timeout: 10s}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert count(doc, "ws_msgs_received", name="pushed") == 12
    assert "ws_msgs_sent" not in doc["metrics"]  # nothing was sent: no sample at all
    assert count(doc, "ws_sessions") == 4


def test_a_refused_upgrade_is_a_counted_error_and_the_vu_goes_on(ws_server, write_plan, run_plan,
                                                                 capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ANON_KEY", "anon-key-very-secret")
    url = ws_server.url.replace("http://", "ws://user:hunter22@")
    plan = write_plan(f"""
        target: {ws_server.url}
        secrets: [ANON_KEY]
        scenarios:
          s: {{executor: per-vu-iterations, vus: 1, iterations: 3, exec: f}}
        flows:
          f:
            - websocket:
                name: refused
                url: {url}/reject
                query: {{apikey: "{{{{ secrets.ANON_KEY }}}}"}}
            - request: {{url: /ok}}
    """)
    code, doc = run_plan(plan)
    assert code == 0  # no budget failed; the errors are in the log
    assert count(doc, "ws_errors", name="refused", error="handshake") == 3
    assert count(doc, "ws_sessions", status="401") == 3
    assert count(doc, "ws_connecting", status="401") == 3
    assert "ws_session_duration" not in doc["metrics"]  # no session ever opened
    [error] = doc["errors"]
    assert error["count"] == 3 and error["kind"] == "protocol"
    assert error["message"] == (f"ws session 'refused' ({ws_server.url.replace('http', 'ws')}"
                                "/reject): the server answered the upgrade with HTTP 401")
    assert count(doc, "http_reqs") == 0  # each iteration ended at the failed upgrade
    assert doc["scenarios"][0]["iterations"] == 3  # failed iterations count, as in k6
    out = capsys.readouterr()
    text = out.out + out.err + (tmp_path / "out" / "results.json").read_text()
    assert "anon-key-very-secret" not in text and "hunter22" not in text
    assert ws_server.stats.handshakes == []  # /reject is plain HTTP: nothing was upgraded


def test_no_connection_is_a_connect_error(write_plan, run_plan, ws_server):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 1, iterations: 2, exec: f}}
        flows:
          f: [{{websocket: {{name: nowhere, url: "ws://127.0.0.1:1/socket", timeout: 5s}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert count(doc, "ws_errors", error="connect") == 2
    assert count(doc, "ws_sessions", status="0") == 2
    assert doc["errors"][0]["kind"] == "connect"


def test_credentials_and_subprotocols_reach_the_handshake(ws_server, write_plan, run_plan):
    url = ws_server.url.replace("http://", "ws://user:pass@")
    plan = write_plan(f"""
        target: {ws_server.url}
        defaults: {{headers: {{X-Default: d, X-Client: default}}}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - websocket:
                name: echo
                url: {url}/echo
                query: {{vsn: "1.0.0", vu: "{{{{ vu }}}}"}}
                headers: {{X-Client: loadaction}}
                subprotocols: [phoenix]
            - ws_close: {{code: 4000, reason: done}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    [handshake] = ws_server.stats.handshakes
    assert handshake["query"] == {"vsn": "1.0.0", "vu": "1"}
    assert handshake["protocol"] == "phoenix"
    headers = handshake["headers"]
    assert headers["X-Client"] == "loadaction" and headers["X-Default"] == "d"
    assert headers["Authorization"] == "Basic dXNlcjpwYXNz"  # user:pass
    assert count(doc, "ws_errors", error="closed") == 0  # closed by the flow, not the server


def test_heartbeats_are_matched_by_ref_and_kept_from_the_flow(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        metrics: {{replies_seen: counter}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - websocket:
                name: phx
                url: /phoenix
                heartbeat:
                  every: 100ms
                  json: {{topic: phoenix, event: heartbeat, payload: {{}}, ref: "{{{{ ws.ref }}}}"}}
                  reply: "$.ref"
                on_open:
                  - ws_subscribe:
                      name: replies
                      where: {{"$.event": phx_reply}}
                      steps: [{{record: {{metric: replies_seen}}}}]
            - ws_receive: {{until: {{"$.event": three_beats}}, timeout: 30s}}
    """)
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    beats = [m for path, m in ws_server.stats.messages if path == "/phoenix"]
    refs = [beat["ref"] for beat in beats]
    assert refs == [str(n) for n in range(1, len(refs) + 1)]  # a fresh ws.ref each time
    assert count(doc, "ws_msgs_sent", name="phx") == len(beats) >= 3
    replies = count(doc, "ws_heartbeat_duration", name="phx")
    # the first three came back before three_beats; one more may have been on its way
    assert 3 <= replies <= len(beats)
    # replies belong to the heartbeat: no subscription (or ws_receive) sees them
    assert "replies_seen" not in doc["metrics"]
    assert count(doc, "ws_errors", error="heartbeat") == 0


def test_an_unanswered_heartbeat_is_an_error_and_the_session_stays(ws_server, write_plan,
                                                                   run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - websocket:
                name: phx
                url: "/phoenix?silent=1"
                heartbeat:
                  every: 200ms
                  text: '{{"topic": "phoenix", "event": "heartbeat", "ref": "{{{{ ws.ref }}}}"}}'
                  reply: "$.ref"
                  timeout: 50ms
            - ws_receive: {{until: {{"$.event": three_beats}}, timeout: 30s}}
            - ws_send: {{json: {{event: still_here, ref: "{{{{ ws.ref }}}}"}}}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    # a beat goes out at least `every` after the one before the last, and its
    # timeout is shorter: by the third, the first had timed out and was counted
    assert count(doc, "ws_errors", error="heartbeat") >= 1
    assert count(doc, "ws_errors", error="closed") == 0
    assert any(m.get("event") == "still_here" for _, m in ws_server.stats.messages)
    [error] = [e for e in doc["errors"] if "heartbeat" in e["message"]]
    assert error["message"].endswith("no reply to a heartbeat within 0.05s")
    assert error["kind"] == "timeout"
    assert count(doc, "ws_session_duration") == 1


def test_a_message_over_max_body_size_is_a_protocol_error(ws_server, write_plan, run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        defaults: {{maxBodySize: 1KB}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - websocket: {{name: echo, url: /echo}}
            - ws_send: {{text: "{{{{ 'x' * 2000 }}}}"}}
            - ws_receive: {{timeout: 10s}}
            - request: {{url: /ok}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert count(doc, "ws_errors", error="protocol") == 1
    messages = [e["message"] for e in doc["errors"]]
    assert any("protocol error" in m for m in messages), messages
    assert any(m.endswith("ended while a ws_receive waited") for m in messages), messages
    assert count(doc, "http_reqs") == 0  # the iteration ended at the receive


def test_caps_count_the_upgrade_and_every_message(ws_server, write_plan, run_plan, capsys):
    plan = write_plan(f"""
        target: {ws_server.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 1, iterations: 100, exec: f}}
        flows:
          f:
            - websocket: {{name: echo, url: /echo, keep: vu}}
            - ws_send: {{text: "n {{{{ iter }}}}"}}
    """)
    code, doc = run_plan(plan, "--max-requests", "10")
    assert code == 3
    assert doc["status"] == "capped"
    assert ws_server.stats.received["/echo"] == 9  # the upgrade was the first of the ten
    assert count(doc, "ws_sessions") == 1
    assert "max-requests cap of 10 reached" in capsys.readouterr().err


def test_a_computed_url_to_a_host_outside_the_allowlist_is_refused(ws_server, write_plan,
                                                                    run_plan):
    plan = write_plan(f"""
        target: {ws_server.url}
        vars: {{host: evil.example}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f: [{{websocket: {{name: out, url: "wss://{{{{ vars.host }}}}/socket"}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    [error] = doc["errors"]
    assert error["kind"] == "refused" and "evil.example" in error["message"]
    assert "ws_sessions" not in doc["metrics"]  # never attempted

