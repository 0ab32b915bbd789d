// The k6 side of bench/websocket.py: VUS sessions on bench/ws_server.py, each
// joining the channel, heartbeating and checking every change until the
// server says the broadcast is over. The same work as bench/ws-plan.yml:
//   join (phx_join, wait for its phx_reply, check status ok), a heartbeat every
//   HEARTBEAT seconds timed to its reply (by ref), a check per postgres_changes
//   message, close on bench_done.
// Run by hand against a running server:
//   k6 run -e TARGET=ws://127.0.0.1:8765/realtime/v1/websocket -e VUS=1000 bench/ws-k6.js
import { check } from "k6";
import { Trend } from "k6/metrics";
import { setInterval, clearInterval } from "k6/timers";
import { WebSocket } from "k6/experimental/websockets"; // k6/websockets from k6 1.2 on

const url = __ENV.TARGET;
const heartbeatMs = Number(__ENV.HEARTBEAT || "5") * 1000;
const topic = "realtime:public:tickets";

export const options = {
  scenarios: {
    subscribers: {
      executor: "per-vu-iterations",
      vus: Number(__ENV.VUS || "1000"),
      iterations: 1,
      maxDuration: __ENV.MAX_DURATION || "10m",
    },
  },
};

// loadaction records the same metric from its heartbeat (request → reply by ref).
const heartbeatDuration = new Trend("ws_heartbeat_duration", true);

export default function () {
  const ws = new WebSocket(url, ["phoenix"]);
  let ref = 0;
  let joinRef = null;
  let heartbeats = null;
  const sentAt = new Map();

  ws.onopen = () => {
    joinRef = String(++ref);
    ws.send(JSON.stringify({
      topic, event: "phx_join", ref: joinRef, join_ref: joinRef,
      payload: { config: { postgres_changes: [{ event: "*", schema: "public", table: "tickets" }] } },
    }));
    heartbeats = setInterval(() => {
      const r = String(++ref);
      sentAt.set(r, Date.now());
      ws.send(JSON.stringify({ topic: "phoenix", event: "heartbeat", payload: {}, ref: r }));
    }, heartbeatMs);
  };

  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.event === "postgres_changes") {
      check(msg, { "json $.payload.data.type in [INSERT, UPDATE]":
        (m) => m.payload.data.type === "INSERT" || m.payload.data.type === "UPDATE" });
    } else if (msg.event === "phx_reply") {
      if (msg.ref === joinRef) {
        check(msg, { "json $.payload.status == ok": (m) => m.payload.status === "ok" });
      } else if (sentAt.has(msg.ref)) {
        heartbeatDuration.add(Date.now() - sentAt.get(msg.ref));
        sentAt.delete(msg.ref);
      }
    } else if (msg.event === "bench_done") {
      ws.close();
    }
  };

  ws.onclose = () => {
    if (heartbeats !== null) {
      clearInterval(heartbeats);
    }
  };
}
