"""A session stays open past the target's idle timeout with heartbeats, against
the real demo target: one run, two VUs side by side, each holding a session of
the bundled dashboard flow's realtime step (read from
scenarios/dashboard-load.yml) through a think longer than the timeout. One
sends the step's heartbeat; the other is the same step without it, so the
target closes it as idle, and its VU goes on to its next step.

The bundled numbers are Phoenix's and supabase-js's: a 60 s idle timeout,
a heartbeat every 25 s (checked below). The run uses them scaled by a tenth
(6 s, 2.5 s, an 8 s hold), the same proportions in 8 s instead of 70: the
beat still comes with 3.5 s to spare, and the silent session's close is due
2 s before the hold ends. What is compared with those bounds is what the run
measured itself: the sessions' durations (a trend's min and max are the
exact samples) and when the close was logged. The target's idle clock
restarts at every frame it reads, the last of the silent session's being its
join, sent after the session opened: so that session lasts at least the
timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from loadaction.demo import DemoTarget, serve_in_thread
from loadaction.demo.realtime import RealtimeSettings
from tests.dashboard_realtime import realtime_step, writer_flow
from tests.ws_servers import count, sinks

SCALE = 0.1  # the bundled timeout and heartbeat, a tenth as long
IDLE_TIMEOUT_S = RealtimeSettings().idle_timeout_s * SCALE  # 6 s
BEAT_S = 25 * SCALE  # the bundled step's 25 s
HOLD_S = 8
BEATS = 3  # at 2.5 s, 5 s and 7.5 s of the hold
TIMER_TICK_MS = 5  # a timer may fire a clock tick early
SUBSCRIBED_CHECK = "json $.payload.status == ok"  # the bundled on_open's check
SERVICE_HEADERS = {"apikey": "{{ secrets.SUPABASE_SERVICE_ROLE_KEY }}",
                   "Authorization": "Bearer {{ secrets.SUPABASE_SERVICE_ROLE_KEY }}"}


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoTarget]:
    with serve_in_thread(realtime=RealtimeSettings(idle_timeout_s=IDLE_TIMEOUT_S)) as target:
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", target.keys.service_role_key)
        yield target


def lifetime_plan(url: str) -> str:
    """JSON is YAML: the bundled step goes in as read (and once without its heartbeat)."""
    beating = realtime_step()
    beating["heartbeat"]["every"] = f"{BEAT_S * 1000:g}ms"
    silent = realtime_step()
    del silent["heartbeat"]
    hold = {"think": f"{HOLD_S}s"}
    return json.dumps({
        "target": url,
        "secrets": ["SUPABASE_SERVICE_ROLE_KEY"],
        "vars": {"event_id": "evt-lifetime"},
        "scenarios": {
            "beating": {"executor": "per-vu-iterations", "exec": "beating"},
            "silent": {"executor": "per-vu-iterations", "exec": "silent"},
        },
        "flows": {
            "beating": [{"websocket": beating}, hold],
            "silent": [{"websocket": silent}, hold,
                       {"request": {"name": "after_the_hold", "url": "/_control/health",
                                    "headers": SERVICE_HEADERS}},
                       {"check": {"status": 200}}],
            "writer": writer_flow(),  # the step's `updates.write` names its request
        },
    }, indent=1)


def session_ms(doc: dict[str, Any], scenario: str) -> float:
    """The scenario's one session's duration (exact: the trend's min)."""
    [sink] = sinks(doc, "ws_session_duration", scenario=scenario)
    assert sink["count"] == 1
    return sink["min"]


def test_heartbeats_keep_a_session_open_past_the_idle_timeout(demo, tmp_path, run_plan):
    # the bundled numbers the run scales
    assert RealtimeSettings().idle_timeout_s == 60 and realtime_step()["heartbeat"]["every"] == "25s"
    plan = tmp_path / "plan.yml"
    plan.write_text(lifetime_plan(demo.url), encoding="utf-8")
    code, doc = run_plan(plan)
    assert code == 0, doc["errors"]
    checks = {(c["scenario"], c["name"]): (c["passes"], c["fails"]) for c in doc["checks"]}
    assert checks[("beating", SUBSCRIBED_CHECK)] == checks[("silent", SUBSCRIBED_CHECK)] == (1, 0)

    # With heartbeats: no error, every beat answered, open for the whole hold.
    assert count(doc, "ws_errors", scenario="beating") == 0
    assert count(doc, "ws_msgs_sent", scenario="beating") == 1 + BEATS  # the join, the beats
    assert count(doc, "ws_heartbeat_duration", scenario="beating") == BEATS
    assert session_ms(doc, "beating") >= HOLD_S * 1000

    # Without: closed by the target as idle, a counted and logged error, no
    # sooner than the timeout after the join (the last frame it sent, sent
    # after the session opened) and before the hold ended.
    assert count(doc, "ws_errors", scenario="silent") == 1
    assert count(doc, "ws_errors", scenario="silent", error="closed") == 1
    assert count(doc, "ws_msgs_sent", scenario="silent") == 1  # its join, nothing after
    duration_ms = session_ms(doc, "silent")
    assert IDLE_TIMEOUT_S * 1000 - TIMER_TICK_MS <= duration_ms < HOLD_S * 1000
    [error] = [e for e in doc["errors"] if e["scenario"] == "silent"]
    assert error["message"].endswith("closed by the server (code 1000: idle timeout)"), error
    assert (error["kind"], error["count"]) == ("disconnect", 1)
    assert IDLE_TIMEOUT_S - TIMER_TICK_MS / 1000 <= error["first_seen_s"] < HOLD_S
    # … and its VU went on: the step after the hold ran.
    assert count(doc, "http_reqs", scenario="silent", name="after_the_hold") == 1
    assert checks[("silent", "status == 200")] == (1, 0)

    assert [e["scenario"] for e in doc["errors"]] == ["silent"]
    assert count(doc, "ws_sessions", status="101") == 2
