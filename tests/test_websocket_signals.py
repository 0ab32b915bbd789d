"""SIGINT while VUs hold WebSocket subscriptions still ends the run within
2 s, with exit 3 and results.json written: sessions close without waiting
for their outstanding updates (dropped uncounted: the run is stopping)."""

from __future__ import annotations

from tests.test_signals import _cancelled, _interrupt
from tests.ws_servers import count, serve


def test_sigint_during_open_subscriptions(tmp_path):
    with serve() as server:
        plan = tmp_path / "plan.yml"
        plan.write_text(f"""
target: {server.url}
scenarios:
  viewers: {{executor: constant-vus, vus: 5, duration: 10m, exec: viewer}}
  writers: {{executor: constant-vus, vus: 2, duration: 10m, exec: writer}}
flows:
  viewer:
    - websocket:
        name: updates
        url: /updates
        keep: vu
        ping: 100ms
        on_open:
          - ws_subscribe:
              name: changes
              updates: {{write: write, write_key: "$.id", key: "$.record.id", deadline: 5m}}
    - think: 200ms
  writer:
    - request: {{name: write, method: POST, url: "/write?drop=all"}}
    - think: 50ms
""")
        out = tmp_path / "out"
        seconds, code = _interrupt(plan, out)
    doc = _cancelled(out, seconds, code)
    assert count(doc, "ws_sessions", status="101") == 5
    assert count(doc, "http_reqs", name="write") > 0  # updates were outstanding at the signal
    assert count(doc, "realtime_updates_missed") == 0  # dropped uncounted, not missed
    assert count(doc, "ws_session_duration") == 5  # every session was closed
