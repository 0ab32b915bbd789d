"""WebSocket steps in a plan: what loads, and every mistake as one PlanError
at the line that makes it (`plan.yml:N: message (hint)`), before anything runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from loadaction.errors import ExitCode, PlanError
from loadaction.plan import load_plan
from loadaction.plan.model import (
    WebSocketStep,
    WsReceiveStep,
    WsSendStep,
    WsSubscribeStep,
)

HEAD = """\
target: http://127.0.0.1:8080
scenarios:
  s: {executor: constant-vus, duration: 1s, exec: viewer}
flows:
  buyer:
    - request: {name: create_checkout, method: POST, url: /checkout}
  viewer:
"""

OPEN = """\
- websocket:
    name: realtime
    url: /realtime/v1/websocket
"""
"""A session; steps are written relative to the viewer flow's list."""


def _write(tmp_path: Path, steps: str, head: str = HEAD) -> tuple[Path, str]:
    text = head + textwrap.indent(textwrap.dedent(steps).strip("\n"), "    ") + "\n"
    path = tmp_path / "plan.yml"
    path.write_text(text)
    return path, text


def _load_error(tmp_path: Path, steps: str, head: str = HEAD) -> tuple[str, str]:
    path, text = _write(tmp_path, steps, head)
    with pytest.raises(PlanError) as caught:
        load_plan(path, env={})
    assert caught.value.exit_code == ExitCode.INVALID
    return str(caught.value).replace(str(path), "plan.yml"), text


def line_of(text: str, marker: str, nth: int = 1) -> int:
    """The 1-based line of the nth occurrence of `marker`."""
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        if marker in line:
            seen += 1
            if seen == nth:
                return number
    raise AssertionError(f"{marker!r} not in the plan")


def test_the_full_syntax_loads(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, """
        - websocket:
            name: realtime
            url: /realtime/v1/websocket
            query: {apikey: key, vsn: "1.0.0"}
            headers: {X-Client: loadaction}
            subprotocols: [phoenix]
            timeout: 10s
            keep: vu
            ping: 20s
            heartbeat:
              every: 25s
              json: {topic: phoenix, event: heartbeat, payload: {}, ref: "{{ ws.ref }}"}
              reply: "$.ref"
              timeout: 10s
            on_open:
              - ws_send:
                  json: {topic: "realtime:dash", event: phx_join, ref: "{{ ws.ref }}"}
              - ws_receive:
                  name: joined
                  until: {"$.event": phx_reply, "$.payload.status": {in: [ok, error]}}
                  timeout: 5s
              - check: {json: {"$.payload.status": ok}}
              - ws_subscribe:
                  name: changes
                  where: {"$.event": postgres_changes}
                  steps:
                    - check: {json: {"$.payload.data.type": {in: [INSERT, UPDATE]}}}
                  updates:
                    write: create_checkout
                    write_key: "$.session_id"
                    key: "$.payload.data.record.id"
        - ws_send: {text: "hello {{ vu }}"}
        - ws_receive: {until: {body: {contains: hello}}, name: echo}
        - check: {body: {contains: hello}, response: echo}
        - ws_close: {session: realtime, code: 4000, reason: done}
    """)
    plan = load_plan(path, env={})
    flow = plan.flows["viewer"]
    assert flow.sessions == ("realtime",)
    assert {write: [path.text for path in paths] for write, paths in plan.realtime_writes.items()} \
        == {"create_checkout": ["$.session_id"]}
    opened = flow.steps[0]
    assert isinstance(opened, WebSocketStep)
    assert (opened.keep, opened.ping, opened.timeout, opened.subprotocols) == ("vu", 20, 10, ("phoenix",))
    assert opened.heartbeat is not None and opened.heartbeat.reply.text == "$.ref"
    receive, subscribe = opened.on_open[1], opened.on_open[3]
    assert isinstance(receive, WsReceiveStep) and len(receive.until) == 2
    assert isinstance(subscribe, WsSubscribeStep) and subscribe.updates.deadline == 5.0
    send = flow.steps[1]
    assert isinstance(send, WsSendStep) and send.session == "realtime"  # the last opened


@pytest.mark.parametrize("steps, marker, message", [
    (OPEN.replace("url:", "urll:"), "urll:",
     "unknown key 'urll' in websocket (did you mean 'url'?)"),
    (OPEN + "    heartbeat: {every: 1s, text: hb, replay: $.ref}\n", "replay",
     "unknown key 'replay' in heartbeat (did you mean 'reply'?)"),
    (OPEN + "- ws_send: {txt: hi}\n", "txt",
     "unknown key 'txt' in ws_send (did you mean 'text'?)"),
    (OPEN + "- ws_receive: {untill: {body: x}}\n", "untill",
     "unknown key 'untill' in ws_receive (did you mean 'until'?)"),
    (OPEN + "- ws_subscribe: {name: c, were: {body: x}, steps: [{set: {a: 1}}]}\n", "were",
     "unknown key 'were' in ws_subscribe (did you mean 'where'?)"),
    (OPEN + "- ws_subscribe: {name: c, updates: {write: create_checkout, write_key: $.a,"
            " key: $.b, dedline: 1s}}\n", "dedline",
     "unknown key 'dedline' in updates (did you mean 'deadline'?)"),
    (OPEN + "- ws_close: {cod: 1000}\n", "cod:",
     "unknown key 'cod' in ws_close (did you mean 'code'?)"),
    (OPEN + "- ws_sned: {text: hi}\n", "ws_sned",
     "unknown step 'ws_sned' (did you mean 'ws_send'?)"),
])
def test_unknown_keys(tmp_path: Path, steps: str, marker: str, message: str) -> None:
    error, text = _load_error(tmp_path, steps)
    assert error == f"plan.yml:{line_of(text, marker)}: {message}"


def test_a_session_no_websocket_step_opens(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + "- ws_send: {session: realtme, text: hi}\n")
    assert error == (f"plan.yml:{line_of(text, 'realtme')}: session: flow 'viewer' opens no "
                     "session named 'realtme' (did you mean 'realtime'?)")


def test_a_session_used_before_the_step_that_opens_it(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, "- ws_send: {session: realtime, text: hi}\n" + OPEN)
    assert error == (f"plan.yml:{line_of(text, 'ws_send')}: session: 'realtime' is used before "
                     f"the websocket step that opens it (line {line_of(text, 'websocket:')})")


@pytest.mark.parametrize("kind", ["ws_send: {text: hi}", "ws_receive: {}", "ws_close: {}",
                                  "ws_subscribe: {name: x, steps: [{set: {a: 1}}]}"])
def test_ws_steps_before_any_websocket(tmp_path: Path, kind: str) -> None:
    error, text = _load_error(tmp_path, f"- {kind}\n" + OPEN)
    name = kind.split(":")[0]
    assert error == (f"plan.yml:{line_of(text, name)}: {name}: no websocket step before it "
                     "opens a session (open one with a websocket step first)")


@pytest.mark.parametrize("steps, marker, message", [
    (OPEN + "- ws_receive: {until: {\"$..[\": 1}}\n", "$..[", "invalid JSON path '$..['"),
    (OPEN + "- ws_subscribe: {name: c, updates: {write: create_checkout, "
            "write_key: session_id, key: $.id}}\n", "write_key",
     "invalid JSON path 'session_id': must start with '$'"),
    (OPEN + "    heartbeat: {every: 1s, text: hb, reply: \"$.[\"}\n", "reply",
     "invalid JSON path '$.['"),
    (OPEN + "- ws_subscribe: {name: c, updates: {timestamp: \"$.a[\"}}\n", "timestamp",
     "invalid JSON path '$.a['"),
    (OPEN + "- ws_receive: {until: {event: phx_reply}}\n", "event",
     ("until: 'event' is neither a JSON path (they start with '$') nor 'body' "
     "(did you mean '$.event'?)")),
])
def test_bad_json_paths(tmp_path: Path, steps: str, marker: str, message: str) -> None:
    error, text = _load_error(tmp_path, steps)
    assert error.startswith(f"plan.yml:{line_of(text, marker)}: {message}"), error


def test_updates_write_naming_no_request_of_the_plan(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + (
        "- ws_subscribe: {name: c, updates: {write: create_chekout, write_key: $.a, "
        "key: $.b}}\n"))
    assert error == (f"plan.yml:{line_of(text, 'create_chekout')}: write: no request of the "
                     "plan is named 'create_chekout' (did you mean 'create_checkout'?)")


@pytest.mark.parametrize("option, message", [
    ("deadline: 0s", "deadline: must be longer than 0s"),
    ("deadline: 20m", ("deadline: 1200s is longer than 600s, the longest an expected update is "
                      "waited for (expected updates are held in memory until their deadline)")),
    ("deadline: 200h", "is longer than 7 days"),
])
def test_update_deadlines_are_positive_and_bounded(tmp_path: Path, option: str, message: str) -> None:
    error, text = _load_error(tmp_path, OPEN + (
        "- ws_subscribe:\n    name: c\n    updates: {write: create_checkout, "
        f"write_key: $.a, key: $.b, {option}}}\n"))
    line = line_of(text, "updates")
    assert error.startswith(f"plan.yml:{line}: deadline: ") and message in error, error


@pytest.mark.parametrize("option, marker, message", [
    ("ping: 0s", "ping", "ping: must be longer than 0s"),
    ("ping: 10ms", "ping", ("ping: 10ms is shorter than 100ms, the shortest keepalive interval "
                           "(send load with ws_send steps instead)")),
    ("timeout: 0s", "timeout", "timeout: must be longer than 0s"),
    ("heartbeat: {every: 50ms, text: hb}", "heartbeat",
     "every: 50ms is shorter than 100ms, the shortest keepalive interval"),
    ("heartbeat: {every: 1s, text: hb, reply: $.ref, timeout: 0s}", "heartbeat",
     "timeout: must be longer than 0s"),
    ("heartbeat: {every: 1s, text: hb, timeout: 1s}", "heartbeat",
     "timeout: a heartbeat without 'reply' waits for no reply"),
    ("heartbeat: {every: 1s, binary: aGI=, reply: $.ref}", "heartbeat",
     "reply: a binary heartbeat has no JSON to find its reply by (send it as text or json)"),
    ("ping: 200h", "ping", "is longer than 7 days"),
])
def test_intervals_and_timeouts(tmp_path: Path, option: str, marker: str, message: str) -> None:
    error, text = _load_error(tmp_path, OPEN + f"    {option}\n")
    assert error.startswith(f"plan.yml:{line_of(text, marker)}: ") and message in error, error


def test_receive_timeouts_are_positive(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + "- ws_receive: {timeout: -1}\n")
    assert error == f"plan.yml:{line_of(text, 'ws_receive')}: timeout: must not be negative, got -1"


def test_keep_choices(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + "    keep: forever\n")
    assert error == (f"plan.yml:{line_of(text, 'keep')}: keep: unknown value 'forever' "
                     "(expected one of: iteration, vu)")


@pytest.mark.parametrize("step, what, hint", [
    ("ws_receive: {until: {}}", "until", "leave it out to take the next message"),
    ("ws_subscribe: {name: c, where: {}, steps: [{set: {a: 1}}]}", "where",
     "leave it out for every message"),
])
def test_empty_conditions(tmp_path: Path, step: str, what: str, hint: str) -> None:
    error, text = _load_error(tmp_path, OPEN + f"- {step}\n")
    assert error == f"plan.yml:{line_of(text, step[:10])}: {what}: no conditions ({hint})"


def test_write_and_timestamp_together(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + (
        "- ws_subscribe:\n    name: c\n    updates:\n      timestamp: $.ts\n"
        "      write: create_checkout\n"))
    assert error.startswith(f"plan.yml:{line_of(text, 'write: create')}: updates: 'write' and "
                            "'timestamp' do not go together (timestamp measures from each "
                            "message's own server time"), error


def test_updates_needs_a_write_or_a_timestamp(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + "- ws_subscribe: {name: c, updates: {deadline: 1s}}\n")
    assert error == (f"plan.yml:{line_of(text, 'ws_subscribe')}: updates needs 'write' (with "
                     "write_key and key) or 'timestamp'")


def test_a_subscription_that_does_nothing(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + "- ws_subscribe: {name: idle}\n")
    assert error == (f"plan.yml:{line_of(text, 'ws_subscribe')}: ws_subscribe 'idle' does "
                     "nothing: give it steps or updates")


@pytest.mark.parametrize("steps, marker, subject", [
    (OPEN + "- ws_receive: {}\n- check: {status: 200}\n", "status", "status"),
    (OPEN + "- ws_receive: {name: got}\n- request: {url: /x}\n"
            "- extract: {header: {etag: ETag}, response: got}\n", "extract", "header"),
    (OPEN + "- ws_subscribe: {name: c, steps: [{check: {header: {a: b}}}]}\n",
     "ws_subscribe", "header"),
])
def test_status_and_headers_of_a_message(tmp_path: Path, steps: str, marker: str,
                                         subject: str) -> None:
    error, text = _load_error(tmp_path, steps)
    assert error == (f"plan.yml:{line_of(text, marker)}: {subject}: a WebSocket message has no "
                     f"{subject} (read its json or body)")


def test_a_check_after_a_request_reads_its_status(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, OPEN + "- ws_receive: {}\n- request: {url: /x}\n"
                                      "- check: {status: 200}\n")
    assert load_plan(path, env={}).flows["viewer"].steps[-1].conditions[0].subject == "status"


@pytest.mark.parametrize("steps, marker, message", [
    (OPEN + "    on_open: [{request: {url: /x}}]\n", "on_open",
     ("'request' is not allowed here (only ws_send, ws_receive, ws_subscribe, check, extract, "
     "record, set, think)")),
    (OPEN + "    on_open: [{websocket: {url: /y}}]\n", "on_open",
     "'websocket' is not allowed here"),
    (OPEN + "- ws_subscribe: {name: c, steps: [{think: 1s}]}\n", "ws_subscribe",
     "'think' is not allowed here (only check, extract, record, set)"),
    (OPEN + "- ws_subscribe: {name: c, steps: [{check: {body: x, response: r}}]}\n",
     "ws_subscribe", "response: the steps of ws_subscribe read each message it receives"),
])
def test_what_nested_steps_may_hold(tmp_path: Path, steps: str, marker: str, message: str) -> None:
    error, text = _load_error(tmp_path, steps)
    assert error.startswith(f"plan.yml:{line_of(text, marker)}: {message}"), error


def test_ws_ref_exists_only_in_what_a_session_sends(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + "- request: {url: \"/x?r={{ ws.ref }}\"}\n")
    assert error.startswith(f"plan.yml:{line_of(text, 'ws.ref')}: unknown name 'ws' in template")


@pytest.mark.parametrize("steps, marker, message", [
    (OPEN + "- ws_send: {text: a, json: {b: 1}}\n", "ws_send",
     "ws_send needs exactly one of text, json or binary, got text and json"),
    (OPEN + "- ws_send: {}\n", "ws_send", "ws_send needs exactly one of text, json or binary"),
    (OPEN + "- ws_send: {binary: \"not base64!\"}\n", "binary",
     "binary: not valid base64 (binary messages are written in base64)"),
    (OPEN + "- ws_close: {code: 1005}\n", "1005", ("code: a client cannot close with 1005 "
     "(use 1000 (normal closure) or an application code from 3000 to 4999)")),
    (OPEN + f"- ws_close: {{reason: {'x' * 124}}}\n", "reason",
     "reason: longer than 123 bytes, what a close frame can carry"),
])
def test_messages_and_closes(tmp_path: Path, steps: str, marker: str, message: str) -> None:
    error, text = _load_error(tmp_path, steps)
    assert error.startswith(f"plan.yml:{line_of(text, marker)}: {message}"), error


def test_session_names_are_unique_in_a_flow(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, OPEN + OPEN)
    assert error == (f"plan.yml:{line_of(text, 'name: realtime', 2)}: name: session 'realtime' "
                     f"is already opened at line {line_of(text, 'websocket:')}; give this one "
                     "another name")


def test_a_receive_may_not_share_a_request_name(tmp_path: Path) -> None:
    error, text = _load_error(tmp_path, "- request: {name: create_checkout, url: /c}\n" + OPEN
                              + "- ws_receive: {name: create_checkout}\n")
    assert error == (f"plan.yml:{line_of(text, 'ws_receive')}: name: 'create_checkout' names a "
                     "request of flow 'viewer' too, so `response:` could mean either")


@pytest.mark.parametrize("url, message", [
    ("ftp://127.0.0.1/x", "url: unsupported scheme 'ftp' (expected ws, wss, http or https)"),
    ("wss://evil.example/socket", ("url: host 'evil.example' is not in the allowed hosts "
                                  "(add it to allowedHosts or pass --allow-host)")),
])
def test_session_urls(tmp_path: Path, url: str, message: str) -> None:
    error, text = _load_error(tmp_path, OPEN.replace("/realtime/v1/websocket", url))
    assert error == f"plan.yml:{line_of(text, url)}: {message}"


def test_a_threshold_on_a_websocket_metric_no_flow_records_is_a_warning(tmp_path: Path) -> None:
    path, text = _write(tmp_path, OPEN, head=HEAD.replace(
        "scenarios:", "thresholds:\n  ws_ping: [\"p(95)<100\"]\n  ws_sessions: [\"count>0\"]\n"
                      "scenarios:"))
    warnings = [str(w).replace(str(path), "plan.yml") for w in load_plan(path, env={}).warnings]
    assert warnings == [(f"plan.yml:{line_of(text, 'p(95)')}: threshold on 'ws_ping': only a "
                        "websocket step with ping records it and no flow that runs has one, so "
                        "it can only end as no data")]


def test_records_inside_subscriptions_count_as_recorded(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, OPEN + "- ws_subscribe: {name: c, steps: [{record: {metric: got}}]}\n",
                     head=HEAD.replace("scenarios:", "metrics: {got: counter}\nthresholds:\n"
                                                     "  got: [\"count>0\"]\nscenarios:"))
    assert load_plan(path, env={}).warnings == ()


def test_the_documented_example_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "plan-format.md").read_text()
    section = doc[doc.index("## WebSocket and realtime"):]
    example = section[section.index("```yaml\n") + 8:section.index("```\n", 8)]
    path = tmp_path / "plan.yml"
    path.write_text("target: http://127.0.0.1:8080\nsecrets: [SUPABASE_ANON_KEY]\n"
                    "scenarios: {s: {executor: constant-vus, duration: 1s, exec: viewer}}\n"
                    + example + "  buyer:\n    - request: {name: create_checkout, url: /c}\n")
    plan = load_plan(path, env={"SUPABASE_ANON_KEY": "anon"})
    opened = plan.flows["viewer"].steps[0]
    assert isinstance(opened, WebSocketStep) and len(opened.on_open) == 4
    assert set(plan.realtime_writes) == {"create_checkout"}
