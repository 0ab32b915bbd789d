#!/usr/bin/env python3
"""Benchmark loadaction's engine against k6 (and its own aiohttp floor).

Not run by CI or the test suite: it needs nginx and k6, both cores and a
while. Run it from the repository root:

    python bench/bench.py                 # everything, tables on stdout + bench/RESULTS.md
    python bench/bench.py --only throughput --repeat 5

Three questions, each answered side by side with k6 in the same invocation,
rounds interleaved (loadaction, loadaction-aiohttp, bare, k6, loadaction, ...)
so a drift in the machine hits every client alike; medians are reported:

1. Throughput: how many requests one CPU-second of the client buys. Same
   server, same concurrency, same duration, no think time:
     - `loadaction run` on a one-request plan (everything on: all metrics,
       tags, per-second series, the results file), with the fast transport
       (the default) and with `--http-client aiohttp`;
     - the bare aiohttp loop, the floor any aiohttp-based engine pays: N tasks
       looping `async with session.get(url) as r: await r.read()` on one
       ClientSession;
     - k6, `http.get` in a loop with no sleep.
   CPU = user + sys of the client process (os.wait4), start-up included;
   requests = each tool's own count (results.json `http_reqs`, k6's
   --summary-export, the loop's counter).
2. Memory and schedule: the peak RSS (ru_maxrss) of each client holding
   1,000 and 10,000 VUs that each send one request and sleep 1 s, as total MB
   and KB per added VU, and the share of that schedule each client kept.
3. Added latency: each client at the same constant arrival rate against
   bench/hold_server.py, which holds every answer a fixed time and reports
   what it really held; the client's p50/p99/max of http_req_duration minus
   the server's own p50/p99/max of the holds of that run.

The target of 1 and 2 is one nginx worker (bench/nginx.conf) answering a tiny
static 200 on an ephemeral port of 127.0.0.1; when nginx is missing, an
aiohttp server in its own process stands in (and the report says so). On a
machine with two or more CPUs the servers are pinned to the last one and the
clients to the others (--no-pin turns that off), so client and server never
fight over a core and the client's CPU time is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
NGINX_CONF = BENCH_DIR / "nginx.conf"
CLIENTS = ("loadaction", "loadaction-aiohttp", "bare", "k6")
LABELS = {"loadaction": "loadaction (fast)", "loadaction-aiohttp": "loadaction (aiohttp)",
          "bare": "bare aiohttp loop", "k6": "k6"}
LOADACTION_CLIENTS = {"loadaction": "fast", "loadaction-aiohttp": "aiohttp"}  # --http-client
# The goals of issue 13, each judged on medians of interleaved rounds:
GOAL_VS_K6 = 2.0  # loadaction's req/CPU-s >= 2 x k6's
GOAL_SCHEDULE = 0.95  # at the largest --mem-vus, >= 95% of the schedule kept on one core
GOAL_MEMORY = 0.1  # KB per added VU <= 0.1 x k6's
GOAL_VS_BARE = 0.85  # the aiohttp transport's old goal: >= 0.85 x the bare aiohttp loop


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class ProcResult:
    """What one client process cost, from the kernel's own accounting."""

    user_s: float
    sys_s: float
    maxrss_kb: int
    wall_s: float
    returncode: int
    stdout: str
    stderr: str
    killed: str | None = None  # why bench.py ended it, if it did

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def _rss_kb(pid: int) -> int:
    """Current resident set size of `pid` in KB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: Sequence[str], *, timeout_s: float, mem_limit_kb: int,
                 env: dict[str, str] | None = None,
                 poll: Callable[[int], None] | None = None) -> ProcResult:
    """Run `cmd` to completion and return its rusage.

    os.wait4 is used instead of Popen.wait because it hands back the child's
    own rusage (user, sys, ru_maxrss), which is exactly the client's cost.
    The loop also enforces a wall-clock limit and a memory ceiling, so a
    client that balloons (k6 at 10,000 VUs can) is stopped before it takes
    the machine down, and is reported as such. `poll` is called with the
    child's pid on every turn of the loop (every 50 ms), for a caller that
    samples the child while it runs (bench/websocket.py: CPU per phase).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=REPO_DIR)
        killed: str | None = None
        term_at: float | None = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if poll is not None:
                poll(proc.pid)
            now = time.monotonic()
            if killed is None and now - start > timeout_s:
                killed = f"timed out after {timeout_s:g}s"
            elif killed is None and _rss_kb(proc.pid) > mem_limit_kb:
                killed = f"RSS above the {mem_limit_kb // 1024} MB ceiling"
            if killed is not None:
                if term_at is None:
                    term_at = now
                    proc.send_signal(signal.SIGTERM)
                elif now - term_at > 10:
                    proc.kill()
            time.sleep(0.05)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcResult(
            user_s=usage.ru_utime, sys_s=usage.ru_stime, maxrss_kb=usage.ru_maxrss,
            wall_s=wall, returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"), stderr=err.read().decode(errors="replace"),
            killed=killed,
        )


# ---------------------------------------------------------------- the server


def free_port() -> int:
    """An ephemeral port that was free a moment ago (the server binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not listening on port {port} after {timeout_s:g}s")


@dataclass
class Server:
    url: str
    kind: str  # what answered, for the report
    proc: subprocess.Popen[bytes]


@contextmanager
def start_server(workdir: Path, cpus: set[int] | None, prefer: str) -> Iterator[Server]:
    """nginx from bench/nginx.conf if it is installed, else an aiohttp server.

    Either runs as our child in the foreground and is stopped on the way out,
    whatever happened in between.
    """
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if prefer == "nginx" and nginx is None:
        print("bench: nginx is not installed (apt-get install nginx); "
              "falling back to an aiohttp server in its own process", file=sys.stderr)
    for attempt in range(5):
        port = free_port()
        if prefer == "nginx" and nginx is not None:
            prefix = workdir / "nginx"
            prefix.mkdir(exist_ok=True)
            conf = prefix / "nginx.conf"
            conf.write_text(NGINX_CONF.read_text().replace("@PORT@", str(port))
                            .replace("@PREFIX@", str(prefix)))
            cmd = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
            kind = _nginx_version(nginx) + " (1 worker, static 200, access_log off)"
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "_server", "--port", str(port)]
            kind = "aiohttp server (fallback: nginx not installed)" if prefer == "nginx" else "aiohttp server"
        # Pinned before exec, so nginx's worker inherits the mask when it forks.
        pin: Callable[[], None] | None = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=pin)
        try:
            wait_listening(port, proc)
        except RuntimeError as exc:
            stop_process(proc)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if attempt == 4:
                raise RuntimeError(f"{exc}: {err.strip()}") from None
            continue  # most likely the port was taken in between: try another
        try:
            yield Server(f"http://127.0.0.1:{port}/", kind, proc)
        finally:
            stop_process(proc)
        return


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _nginx_version(path: str) -> str:
    out = subprocess.run([path, "-v"], capture_output=True, text=True).stderr.strip()
    return out.removeprefix("nginx version: ") or "nginx"


# ---------------------------------------------------------------- the clients


@dataclass(frozen=True)
class Workload:
    """The same for every client in a comparison."""

    url: str
    vus: int
    duration_s: float
    think_s: float  # 0: loop with no sleep
    rate: int = 0  # > 0: constant-arrival-rate at this many iterations/s, `vus` pre-allocated


@dataclass(frozen=True)
class Measurement:
    client: str
    workload: Workload
    proc: ProcResult
    requests: int
    failed: int
    note: str | None = None
    durations_ms: dict[str, float] = field(default_factory=dict)  # med, p99, max of http_req_duration

    @property
    def ok(self) -> bool:
        return self.note is None

    @property
    def per_cpu_s(self) -> float:
        return self.requests / self.proc.cpu_s if self.proc.cpu_s > 0 else 0.0


def _seconds(value: float) -> str:
    return f"{value:g}s"


def loadaction_plan(w: Workload) -> str:
    """One flow, one GET of the URL's path (and a think step for memory runs)."""
    think = f"    - think: {_seconds(w.think_s)}\n" if w.think_s > 0 else ""
    path = "/" + w.url.split("/", 3)[3] if w.url.count("/") >= 3 else "/"
    if w.rate:
        executor = ("    executor: constant-arrival-rate\n"
                    f"    rate: {w.rate}\n"
                    "    timeUnit: 1s\n"
                    f"    preAllocatedVUs: {w.vus}\n")
    else:
        executor = "    executor: constant-vus\n" f"    vus: {w.vus}\n"
    return (
        "name: bench\n"
        "flows:\n"
        "  hit:\n"
        f"    - request: {{url: {path}}}\n"
        f"{think}"
        "scenarios:\n"
        "  hit:\n"
        f"{executor}"
        f"    duration: {_seconds(w.duration_s)}\n"
    )


K6_SCRIPT = """\
import http from "k6/http";
import { sleep } from "k6";

const url = __ENV.TARGET;
const think = Number(__ENV.THINK || "0");

export default function () {
  http.get(url);
  if (think > 0) {
    sleep(think);
  }
}
"""

K6_RATE_SCRIPT = """\
import http from "k6/http";

export const options = {
  scenarios: {
    hit: {
      executor: "constant-arrival-rate",
      rate: Number(__ENV.RATE),
      timeUnit: "1s",
      duration: __ENV.DURATION,
      preAllocatedVUs: Number(__ENV.VUS),
    },
  },
};

export default function () {
  http.get(__ENV.TARGET);
}
"""


@dataclass
class Tools:
    python: str
    k6: str | None
    clients: tuple[str, ...]
    mem_limit_kb: int
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def run_client(tools: Tools, client: str, w: Workload, tmp: Path) -> Measurement:
    """Run one client on one workload in a fresh temp dir; count its requests."""
    work = Path(tempfile.mkdtemp(prefix=f"{client}-", dir=tmp))
    timeout = w.duration_s + 90 + w.vus / 100  # start-up, k6's VU init, graceful stop
    if client in LOADACTION_CLIENTS:
        plan = work / "plan.yml"
        plan.write_text(loadaction_plan(w))
        base = w.url.split("/", 3)
        cmd = [tools.python, "-m", "loadaction", "run", str(plan), "--target", "/".join(base[:3]),
               "--http-client", LOADACTION_CLIENTS[client], "--quiet", "--out", str(work),
               # one process: what a core does (bench/workers.py measures --workers auto)
               "--workers", "1"]
    elif client == "bare":
        cmd = [tools.python, str(Path(__file__).resolve()), "_bare", "--url", w.url,
               "--vus", str(w.vus), "--duration", str(w.duration_s), "--think", str(w.think_s),
               "--out", str(work / "bare.json")]
    elif client == "k6" and w.rate:
        assert tools.k6 is not None
        script = work / "script.js"
        script.write_text(K6_RATE_SCRIPT)
        cmd = [tools.k6, "run", "--quiet", "--no-color", "--no-usage-report", "--no-thresholds",
               "--summary-trend-stats", "med,p(99),max",
               "--summary-export", str(work / "summary.json"),
               "-e", f"TARGET={w.url}", "-e", f"RATE={w.rate}", "-e", f"VUS={w.vus}",
               "-e", f"DURATION={_seconds(w.duration_s)}", str(script)]
    elif client == "k6":
        assert tools.k6 is not None
        script = work / "script.js"
        script.write_text(K6_SCRIPT)
        cmd = [tools.k6, "run", "--quiet", "--no-color", "--no-usage-report", "--no-thresholds",
               "--vus", str(w.vus), "--duration", _seconds(w.duration_s),
               "--summary-export", str(work / "summary.json"),
               "-e", f"TARGET={w.url}", "-e", f"THINK={w.think_s:g}", str(script)]
    else:
        raise ValueError(client)
    env = dict(tools.env, K6_NO_USAGE_REPORT="true")
    proc = run_measured(cmd, timeout_s=timeout, mem_limit_kb=tools.mem_limit_kb, env=env)
    try:
        requests, failed = _count(client, work)
        durations = _durations(client, work) if w.rate else {}
    except (OSError, KeyError, ValueError) as exc:
        requests, failed = 0, 0
        why = proc.killed or f"exit {proc.returncode}, no count ({exc})"
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return Measurement(client, w, proc, 0, 0, note=f"{why}: {' | '.join(tail)}"[:300])
    note = proc.killed
    if note is None and proc.returncode != 0:
        note = f"exit code {proc.returncode}"
    if note is None and requests and failed > requests * 0.01:
        note = f"{failed} of {requests} requests failed"
    return Measurement(client, w, proc, requests, failed, note, durations)


def _count(client: str, work: Path) -> tuple[int, int]:
    """(requests, failed requests) as the tool itself reported them."""
    if client in LOADACTION_CLIENTS:
        doc = json.loads((work / "results.json").read_text())
        metrics = doc["metrics"]
        failed = metrics.get("http_req_failed", {}).get("total") or {}
        return int(metrics["http_reqs"]["total"]["count"]), int(failed.get("passes", 0))
    if client == "bare":
        doc = json.loads((work / "bare.json").read_text())
        return int(doc["requests"]), int(doc["failed"])
    doc = json.loads((work / "summary.json").read_text())
    failed = doc["metrics"].get("http_req_failed", {})
    return int(doc["metrics"]["http_reqs"]["count"]), int(failed.get("passes", 0))


def _durations(client: str, work: Path) -> dict[str, float]:
    """http_req_duration's median, p99 and max in ms, as the tool reported them."""
    if client in LOADACTION_CLIENTS:
        d = json.loads((work / "results.json").read_text())["metrics"]["http_req_duration"]["total"]
        return {"med": d["med"], "p99": d["p99"], "max": d["max"]}
    d = json.loads((work / "summary.json").read_text())["metrics"]["http_req_duration"]
    return {"med": d["med"], "p99": d["p(99)"], "max": d["max"]}


# ---------------------------------------------------------------- the bare loop


async def bare_loop(url: str, vus: int, duration_s: float, think_s: float) -> tuple[int, int]:
    """The floor: what any engine built on aiohttp pays per request at least.

    One ClientSession, `vus` tasks, each looping get + read (+ sleep when
    there is think time) until the deadline; the request in flight at the
    deadline completes, as k6's and loadaction's graceful stop let it. The
    connector has no connection limit (aiohttp's default is 100), as
    loadaction's has none and each k6 VU has its own connections: otherwise
    10,000 VUs would share 100 sockets and the memory figures would not compare.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    requests = failed = 0

    async def vu(session: aiohttp.ClientSession) -> None:
        nonlocal requests, failed
        while loop.time() < deadline:
            try:
                async with session.get(url) as r:
                    await r.read()
                    if r.status >= 400:
                        failed += 1
            except (TimeoutError, aiohttp.ClientError, OSError):
                failed += 1
            requests += 1
            if think_s:
                await asyncio.sleep(think_s)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(vu(session) for _ in range(vus)))
    return requests, failed


def serve(port: int) -> None:
    """The fallback target: the cheapest aiohttp server, no access log."""
    from aiohttp import web

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---------------------------------------------------------------- the runs


def pin_plan(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): the last CPU for the server, the rest for
    clients; (None, None) when not pinning or with a single CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def throughput(tools: Tools, url: str, args: argparse.Namespace, tmp: Path,
               log: Callable[[str], None]) -> dict[str, list[Measurement]]:
    w = Workload(url, args.vus, args.duration, 0.0)
    runs: dict[str, list[Measurement]] = {c: [] for c in tools.clients}
    for i in range(args.repeat):
        for client in tools.clients:
            m = run_client(tools, client, w, tmp)
            runs[client].append(m)
            log(f"throughput run {i + 1}/{args.repeat} {client:>10}: {m.requests} req, "
                f"{m.proc.cpu_s:.2f} CPU-s, {m.per_cpu_s:,.0f} req/CPU-s"
                + (f"  [{m.note}]" if m.note else ""))
            time.sleep(args.pause)
    return runs


def memory(tools: Tools, url: str, args: argparse.Namespace, tmp: Path,
           log: Callable[[str], None]) -> list[Measurement]:
    """`--mem-repeat` interleaved rounds of every (VU count, client)."""
    out: list[Measurement] = []
    for i in range(args.mem_repeat):
        for vus in args.mem_vus:
            w = Workload(url, vus, args.mem_duration, args.think)
            for client in tools.clients:
                m = run_client(tools, client, w, tmp)
                out.append(m)
                log(f"memory run {i + 1}/{args.mem_repeat} {vus:>6} VUs {client:>18}: peak RSS "
                    f"{m.proc.maxrss_kb / 1024:,.1f} MB, {m.requests} req"
                    + (f"  [{m.note}]" if m.note else ""))
                time.sleep(args.pause * 3)  # let 10,000 sockets close before the next client
    return out


def latency(tools: Tools, args: argparse.Namespace, tmp: Path, server_cpus: set[int] | None,
            log: Callable[[str], None]) -> list[tuple[Measurement, dict[str, float]]]:
    """Each client at the same constant arrival rate against bench/hold_server.py;
    after each run, the server's own holds for exactly that run."""
    clients = [c for c in tools.clients if c != "bare"]  # the bare loop keeps no durations
    out: list[tuple[Measurement, dict[str, float]]] = []
    with start_hold_server(server_cpus, args.lat_hold_ms) as url:
        for i in range(args.lat_repeat):
            for client in clients:
                w = Workload(url + "hold", args.lat_vus, args.lat_duration, 0.0, rate=args.lat_rate)
                hold_stats(url)  # start afresh: nothing of the last run's stragglers
                m = run_client(tools, client, w, tmp)
                server = hold_stats(url)
                out.append((m, server))
                added = {k: m.durations_ms.get(k, 0.0) - server[k] for k in server}
                log(f"latency run {i + 1}/{args.lat_repeat} {client:>18}: {m.requests} req; added "
                    + ", ".join(f"{k} {v:+.3f} ms" for k, v in added.items())
                    + (f"  [{m.note}]" if m.note else ""))
                time.sleep(args.pause)
    return out


@contextmanager
def start_hold_server(cpus: set[int] | None, hold_ms: float) -> Iterator[str]:
    port = free_port()
    pin: Callable[[], None] | None = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen([sys.executable, str(BENCH_DIR / "hold_server.py"), "--port", str(port),
                             "--hold-ms", f"{hold_ms:g}"], preexec_fn=pin)
    try:
        wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_process(proc)


def hold_stats(url: str) -> dict[str, float]:
    """The server's holds since the last call: median, p99 (nearest rank) and
    max in ms, the statistics the clients report."""
    import urllib.request
    with urllib.request.urlopen(url + "_stats", timeout=10) as r:
        holds = sorted(json.load(r)["holds_us"])
    if not holds:
        return {"med": 0.0, "p99": 0.0, "max": 0.0}
    def rank(q: float) -> float:
        return holds[min(len(holds) - 1, max(0, int(q * len(holds) + 0.5) - 1))] / 1000
    return {"med": rank(0.5), "p99": rank(0.99), "max": holds[-1] / 1000}


# ---------------------------------------------------------------- the report


def median_run(runs: list[Measurement]) -> Measurement | None:
    """The run with the median req/CPU-s among the valid ones."""
    good = sorted((m for m in runs if m.ok), key=lambda m: m.per_cpu_s)
    return good[(len(good) - 1) // 2] if good else None


def throughput_table(runs: dict[str, list[Measurement]], args: argparse.Namespace) -> str:
    lines = [
        f"### Throughput: {args.vus} VUs, {args.duration:g} s, no think time "
        f"(median of {args.repeat})",
        "",
        "| client | req/CPU-s (median) | each run | requests | CPU s (user+sys) | req/s (wall) "
        "| CPU use |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    medians: dict[str, float] = {}
    for client, ms in runs.items():
        med = median_run(ms)
        each = " / ".join(f"{m.per_cpu_s:,.0f}" if m.ok else "failed" for m in ms)
        if med is None:
            lines.append(f"| {LABELS[client]} | failed | {each} | | | | |")
            continue
        medians[client] = med.per_cpu_s
        lines.append(f"| {LABELS[client]} | {med.per_cpu_s:,.0f} | {each} | {med.requests:,} | "
                     f"{med.proc.cpu_s:.2f} | {med.requests / med.proc.wall_s:,.0f} | "
                     f"{med.proc.cpu_s / med.proc.wall_s:.0%} |")
    lines += ["", "| ratio (req/CPU-s) | value |", "|---|---:|"]
    for a, b, goal in (("loadaction", "k6", GOAL_VS_K6), ("loadaction-aiohttp", "k6", None),
                       ("loadaction", "loadaction-aiohttp", None),
                       ("loadaction-aiohttp", "bare", GOAL_VS_BARE), ("k6", "bare", None)):
        if a in medians and b in medians:
            ratio = medians[a] / medians[b]
            text = f"{ratio:.3f}"
            if goal is not None:
                text += f" (goal ≥ {goal:.2f}: {'met' if ratio >= goal else 'not met'})"
            lines.append(f"| {LABELS[a]} / {LABELS[b]} | {text} |")
    notes = [f"- {LABELS[m.client]} run: {m.note}" for ms in runs.values() for m in ms if m.note]
    lines += ["", "Each run counts the whole client process, start-up and final report included. "
              "CPU use = CPU s / wall s of the median run: a client with no think time is "
              "CPU-bound, so well under 100% means it was kept off its CPU (a busy machine), "
              "which makes that run's figure less reliable."]
    return "\n".join(lines + ([""] + notes if notes else []))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2] if ordered else 0.0


def memory_table(results: list[Measurement], args: argparse.Namespace) -> str:
    lines = [
        f"### Memory and schedule: constant VUs, each one request then sleep {args.think:g} s, "
        f"{args.mem_duration:g} s (median of {args.mem_repeat})",
        "",
        "| client | VUs | peak RSS (MB) | each run (MB) | KB per VU (total / VUs) "
        "| KB per added VU | requests | of schedule |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    cells: dict[tuple[str, int], list[Measurement]] = {}
    for m in results:
        cells.setdefault((m.client, m.workload.vus), []).append(m)
    per_added: dict[str, float] = {}
    schedule_at_max: dict[str, float] = {}
    top = max(args.mem_vus)
    clients = list(dict.fromkeys(m.client for m in results))
    for client in clients:
        prev_rss: float | None = None
        prev_vus = 0
        for vus in sorted(args.mem_vus):
            ms = cells.get((client, vus), [])
            good = [m for m in ms if not m.proc.killed and m.ok]
            each = " / ".join(f"{m.proc.maxrss_kb / 1024:,.0f}" if not m.proc.killed else "killed"
                              for m in ms)
            if not good:
                lines.append(f"| {LABELS[client]} | {vus:,} | failed | {each} | | | | |")
                prev_rss = None
                continue
            rss_kb = _median([m.proc.maxrss_kb for m in good])
            requests = _median([m.requests for m in good])
            w = good[0].workload
            share = requests / (w.vus * w.duration_s / w.think_s) if w.think_s > 0 else 0.0
            if vus == top:
                schedule_at_max[client] = share
            marginal = ""
            if prev_rss is not None:
                per_added[client] = (rss_kb - prev_rss) / (vus - prev_vus)
                marginal = f"{per_added[client]:,.1f}"
            lines.append(f"| {LABELS[client]} | {vus:,} | {rss_kb / 1024:,.1f} | {each} | "
                         f"{rss_kb / vus:,.1f} | {marginal} | {requests:,.0f} | {share:.0%} |")
            prev_rss, prev_vus = rss_kb, vus
    lines += ["", "| goal | value |", "|---|---:|"]
    if "loadaction" in per_added and "k6" in per_added and per_added["k6"] > 0:
        ratio = per_added["loadaction"] / per_added["k6"]
        lines.append(f"| KB per added VU, loadaction / k6 | {ratio:.3f} (goal ≤ {GOAL_MEMORY:g}: "
                     f"{'met' if ratio <= GOAL_MEMORY else 'not met'}) |")
    for client in clients:
        if client in schedule_at_max:
            share = schedule_at_max[client]
            goal = (f" (goal ≥ {GOAL_SCHEDULE:.0%}: {'met' if share >= GOAL_SCHEDULE else 'not met'})"
                    if client == "loadaction" else "")
            lines.append(f"| {LABELS[client]}: schedule kept at {top:,} VUs | {share:.1%}{goal} |")
    notes = [f"- {LABELS[m.client]} at {m.workload.vus:,} VUs: {m.note}" for m in results if m.note]
    lines += ["", "Medians per client and VU count over interleaved rounds. KB per added VU: the "
              "growth in median peak RSS from the row above, per VU added (what each VU costs once "
              "the process itself is paid for). Of schedule: requests sent / (VUs x duration / "
              "think time), the share of its schedule the client kept; far below 100% means it ran "
              "out of CPU (every client has one CPU here) and its VUs spent the time waiting "
              "rather than sleeping."]
    return "\n".join(lines + ([""] + notes if notes else []))


def latency_table(results: list[tuple[Measurement, dict[str, float]]],
                  args: argparse.Namespace) -> str:
    lines = [
        f"### Added latency: {args.lat_rate:,} requests/s (constant-arrival-rate, "
        f"{args.lat_vus} VUs pre-allocated) for {args.lat_duration:g} s against a server that "
        f"holds each answer {args.lat_hold_ms:g} ms (median of {args.lat_repeat})",
        "",
        "| client | added p50 (ms) | added p99 (ms) | added max (ms) | each run's added max (ms) "
        "| client p50 / p99 / max (ms) | server's hold p50 / p99 / max (ms) |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    by_client: dict[str, list[tuple[Measurement, dict[str, float]]]] = {}
    for m, server in results:
        by_client.setdefault(m.client, []).append((m, server))
    added: dict[str, dict[str, float]] = {}
    for client, runs in by_client.items():
        good = [(m, sv) for m, sv in runs if m.ok and m.durations_ms]
        if not good:
            lines.append(f"| {LABELS[client]} | failed | | | | | |")
            continue
        adds = {k: _median([m.durations_ms[k] - sv[k] for m, sv in good]) for k in ("med", "p99", "max")}
        added[client] = adds
        each = " / ".join(f"{m.durations_ms['max'] - sv['max']:.2f}" for m, sv in good)
        cl = " / ".join(f"{_median([m.durations_ms[k] for m, _ in good]):.2f}" for k in ("med", "p99", "max"))
        sv = " / ".join(f"{_median([s[k] for _, s in good]):.2f}" for k in ("med", "p99", "max"))
        lines.append(f"| {LABELS[client]} | {adds['med']:.3f} | {adds['p99']:.3f} | {adds['max']:.2f} "
                     f"| {each} | {cl} | {sv} |")
    if "loadaction" in added and "k6" in added:
        verdicts = [f"{k}: {'met' if added['loadaction'][k] <= added['k6'][k] else 'not met'}"
                    for k in ("med", "p99", "max")]
        lines += ["", f"Goal, loadaction's added latency ≤ k6's: {', '.join(verdicts)}."]
    notes = [f"- {LABELS[m.client]} run: {m.note}" for m, _ in results if m.note]
    lines += ["", "Added = the client's own http_req_duration statistic minus the same statistic of "
              "the holds the server measured itself for exactly that run (bench/hold_server.py: "
              "from the request parsed to the answer written), so the server's timer and loop are "
              "not counted against the client. p99 is nearest-rank on the server's list and the "
              "tool's own estimate on the client's (HDR for loadaction, k6's for k6)."]
    return "\n".join(lines + ([""] + notes if notes else []))


def machine(tools: Tools, server_kind: str) -> list[tuple[str, str]]:
    """Everything needed to judge whether two RESULTS.md are comparable."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiohttp

    k6 = "not installed"
    if tools.k6:
        k6 = subprocess.run([tools.k6, "version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    return [
        ("CPUs (nproc)", str(os.cpu_count())),
        ("CPU model", cpu),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("aiohttp", aiohttp.__version__),
        ("k6", k6),
        ("server", server_kind),
        ("loadaction commit", commit),
    ]


def reproduce_command(args: argparse.Namespace) -> str:
    """Every option spelled out, so a change of defaults does not change the meaning."""
    argv = ["bench/bench.py", "--vus", str(args.vus), "--duration", f"{args.duration:g}",
            "--repeat", str(args.repeat), "--mem-vus", ",".join(map(str, args.mem_vus)),
            "--mem-duration", f"{args.mem_duration:g}", "--mem-repeat", str(args.mem_repeat),
            "--think", f"{args.think:g}", "--lat-rate", str(args.lat_rate),
            "--lat-vus", str(args.lat_vus), "--lat-duration", f"{args.lat_duration:g}",
            "--lat-hold-ms", f"{args.lat_hold_ms:g}", "--lat-repeat", str(args.lat_repeat),
            "--clients", ",".join(args.clients), "--server", args.server]
    if args.only:
        argv += ["--only", args.only]
    if not args.pin:
        argv.append("--no-pin")
    return shlex.join(["python", *argv])


def report(sections: list[str], tools: Tools, server_kind: str, args: argparse.Namespace,
           server_cpus: set[int] | None, client_cpus: set[int] | None) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(f"| {k} | {v} |" for k, v in machine(tools, server_kind))
    pinning = (f"server pinned to CPU {sorted(server_cpus)}, clients to CPU {sorted(client_cpus)} "
               f"(so k6's Go runtime, too, runs on {len(client_cpus)} CPU)"
               if server_cpus and client_cpus else "not pinned")
    return "\n".join([
        "# loadaction benchmark",
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
        *(s + "\n" for s in sections),
        "CPU = user + sys of the client process (os.wait4); peak RSS = its ru_maxrss. "
        "Requests are each tool's own count: loadaction's results.json `http_reqs`, "
        "k6's `--summary-export`, the bare loop's counter. See bench/bench.py's docstring "
        "for the method. Other load on the machine is not controlled: the CPU use column "
        "shows when a run was starved.",
        "",
    ])


# ---------------------------------------------------------------- command line


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _clients(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [n for n in names if n not in CLIENTS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown client(s) {bad}; choose from {CLIENTS}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("throughput", "memory", "latency"), help="run one part only")
    p.add_argument("--vus", type=int, default=50, help="throughput: concurrent VUs (50)")
    p.add_argument("--duration", type=float, default=10.0, help="throughput: seconds per run (10)")
    p.add_argument("--repeat", type=int, default=3, help="throughput: runs per client; median (3)")
    p.add_argument("--mem-vus", type=_int_list, default=[1000, 10000],
                   help="memory: VU counts, comma-separated (1000,10000)")
    p.add_argument("--mem-duration", type=float, default=15.0, help="memory: seconds per run (15)")
    p.add_argument("--mem-repeat", type=int, default=1,
                   help="memory: interleaved rounds; medians (1)")
    p.add_argument("--lat-rate", type=int, default=500, help="latency: requests/s (500)")
    p.add_argument("--lat-vus", type=int, default=50, help="latency: VUs pre-allocated (50)")
    p.add_argument("--lat-duration", type=float, default=10.0, help="latency: seconds per run (10)")
    p.add_argument("--lat-hold-ms", type=float, default=10.0,
                   help="latency: the server's hold per answer (10)")
    p.add_argument("--lat-repeat", type=int, default=3, help="latency: interleaved rounds; medians (3)")
    p.add_argument("--think", type=float, default=1.0, help="memory: sleep after each request (1)")
    p.add_argument("--mem-limit-mb", type=int, default=16384,
                   help="stop a client whose RSS passes this (16384)")
    p.add_argument("--clients", type=_clients, default=CLIENTS,
                   help="comma-separated subset of " + ",".join(CLIENTS) + " (all)")
    p.add_argument("--server", choices=("nginx", "aiohttp"), default="nginx",
                   help="the target (nginx; aiohttp when nginx is missing)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="server on the last CPU, clients on the others (on)")
    p.add_argument("--k6", help="the k6 binary (default: k6 on PATH or beside this Python)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between runs (1)")
    p.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md",
                   help="where to write the Markdown report (bench/RESULTS.md)")
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return p


def find_k6(explicit: str | None) -> str | None:
    """The `k6` PyPI package puts the real binary in the environment's bin/."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "k6"
    return shutil.which("k6") or (str(beside) if os.access(beside, os.X_OK) else None)


def internal(argv: list[str]) -> int:
    """Subcommands bench.py runs itself as, in a child process."""
    p = argparse.ArgumentParser(prog="bench.py " + argv[0])
    if argv[0] == "_server":
        p.add_argument("--port", type=int, required=True)
        serve(p.parse_args(argv[1:]).port)
        return 0
    p.add_argument("--url", required=True)
    p.add_argument("--vus", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--think", type=float, default=0.0)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv[1:])
    requests, failed = asyncio.run(bare_loop(a.url, a.vus, a.duration, a.think))
    a.out.write_text(json.dumps({"requests": requests, "failed": failed}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_bare", "_server"):
        return internal(argv)
    args = build_parser().parse_args(argv)

    def log(text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    k6 = find_k6(args.k6)
    clients = args.clients
    if "k6" in clients and k6 is None:
        log("k6 not found (pip install k6); leaving it out")
        clients = tuple(c for c in clients if c != "k6")
    args.clients = clients
    tools = Tools(python=sys.executable, k6=k6, clients=clients,
                  mem_limit_kb=args.mem_limit_mb * 1024)
    server_cpus, client_cpus = pin_plan(args.pin)
    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="loadaction-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with start_server(tmp, server_cpus, args.server) as server:
            if client_cpus:
                os.sched_setaffinity(0, client_cpus)  # every client inherits it
            log(f"target {server.url} ({server.kind}); clients: {', '.join(clients)}")
            if args.only in (None, "throughput"):
                sections.append(throughput_table(throughput(tools, server.url, args, tmp, log), args))
            if args.only in (None, "memory"):
                sections.append(memory_table(memory(tools, server.url, args, tmp, log), args))
            kind = server.kind
        if args.only in (None, "latency"):
            sections.append(latency_table(latency(tools, args, tmp, server_cpus, log), args))
    text = report(sections, tools, kind, args, server_cpus, client_cpus)
    print(text)
    if not args.no_write:
        args.results.write_text(text)
        log(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
