#!/usr/bin/env python3
"""Benchmark loadaction's engine against its floor and against k6.

Not run by CI or the test suite: it needs nginx and k6, both cores and a
couple of minutes. Run it from the repository root:

    python bench/bench.py                 # everything, tables on stdout + bench/RESULTS.md
    python bench/bench.py --only throughput --repeat 5

Two questions, each answered by the client process's own resource usage:

1. Throughput: how many requests one CPU-second of the client buys. Three
   clients, same server, same concurrency, same duration, no think time:
     - `loadaction run` on a one-request plan (everything on: all metrics,
       tags, per-second series, the results file);
     - the bare aiohttp loop, the floor any aiohttp-based engine pays: N tasks
       looping `async with session.get(url) as r: await r.read()` on one
       ClientSession;
     - k6, `http.get` in a loop with no sleep.
   CPU = user + sys of the client process (os.wait4), requests = each tool's
   own count (results.json `http_reqs`, k6's --summary-export, the loop's
   counter). Runs are interleaved (loadaction, bare, k6, loadaction, ...) so a
   drift in the machine hits every client alike; the median run is reported.
2. Memory: the peak RSS (ru_maxrss) of each client holding 1,000 and 10,000
   VUs that each send one request and sleep 1 s, as total MB and KB per VU.

The target is one nginx worker (bench/nginx.conf) answering a tiny static
200 on an ephemeral port of 127.0.0.1; when nginx is missing, an aiohttp
server in its own process stands in (and the report says so). On a machine
with two or more CPUs the server is pinned to the last one and the clients
to the others (--no-pin turns that off), so client and server never fight
over a core and the client's CPU time is its own.
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
CLIENTS = ("loadaction", "bare", "k6")
LABELS = {"loadaction": "loadaction", "bare": "bare aiohttp loop", "k6": "k6"}
GOAL_VS_BARE = 0.85  # the project's goal: loadaction >= 0.85 x the bare loop's req/CPU-s


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


@dataclass(frozen=True)
class Measurement:
    client: str
    workload: Workload
    proc: ProcResult
    requests: int
    failed: int
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.note is None

    @property
    def per_cpu_s(self) -> float:
        return self.requests / self.proc.cpu_s if self.proc.cpu_s > 0 else 0.0


def _seconds(value: float) -> str:
    return f"{value:g}s"


def loadaction_plan(w: Workload) -> str:
    """One flow, one GET of the target's root (and a think step for memory runs)."""
    think = f"    - think: {_seconds(w.think_s)}\n" if w.think_s > 0 else ""
    return (
        "name: bench\n"
        "flows:\n"
        "  hit:\n"
        "    - request: {url: /}\n"
        f"{think}"
        "scenarios:\n"
        "  hit:\n"
        "    executor: constant-vus\n"
        f"    vus: {w.vus}\n"
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
    if client == "loadaction":
        plan = work / "plan.yml"
        plan.write_text(loadaction_plan(w))
        cmd = [tools.python, "-m", "loadaction", "run", str(plan), "--target", w.url.rstrip("/"),
               "--quiet", "--out", str(work)]
    elif client == "bare":
        cmd = [tools.python, str(Path(__file__).resolve()), "_bare", "--url", w.url,
               "--vus", str(w.vus), "--duration", str(w.duration_s), "--think", str(w.think_s),
               "--out", str(work / "bare.json")]
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
    return Measurement(client, w, proc, requests, failed, note)


def _count(client: str, work: Path) -> tuple[int, int]:
    """(requests, failed requests) as the tool itself reported them."""
    if client == "loadaction":
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
    out: list[Measurement] = []
    for vus in args.mem_vus:
        w = Workload(url, vus, args.mem_duration, args.think)
        for client in tools.clients:
            m = run_client(tools, client, w, tmp)
            out.append(m)
            log(f"memory {vus:>6} VUs {client:>10}: peak RSS {m.proc.maxrss_kb / 1024:,.1f} MB, "
                f"{m.requests} req" + (f"  [{m.note}]" if m.note else ""))
            time.sleep(args.pause * 3)  # let 10,000 sockets close before the next client
    return out


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
    for a, b, goal in (("loadaction", "bare", GOAL_VS_BARE), ("k6", "bare", None),
                       ("loadaction", "k6", None)):
        if a in medians and b in medians:
            ratio = medians[a] / medians[b]
            text = f"{ratio:.3f}"
            if goal is not None:
                text += f" (goal ≥ {goal:.2f}: {'met' if ratio >= goal else 'not met'})"
            lines.append(f"| {a} / {b} | {text} |")
    notes = [f"- {LABELS[m.client]} run: {m.note}" for ms in runs.values() for m in ms if m.note]
    lines += ["", "Each run counts the whole client process, start-up and final report included. "
              "CPU use = CPU s / wall s of the median run: a client with no think time is "
              "CPU-bound, so well under 100% means it was kept off its CPU (a busy machine), "
              "which makes that run's figure less reliable."]
    return "\n".join(lines + ([""] + notes if notes else []))


def memory_table(results: list[Measurement], args: argparse.Namespace) -> str:
    lines = [
        f"### Memory: constant VUs, each one request then sleep {args.think:g} s, "
        f"{args.mem_duration:g} s",
        "",
        "| client | VUs | peak RSS (MB) | KB per VU (total / VUs) | KB per added VU | requests "
        "| of schedule |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_client: dict[str, list[Measurement]] = {}
    for m in results:
        by_client.setdefault(m.client, []).append(m)
    for client, ms in by_client.items():
        prev: Measurement | None = None
        for m in sorted(ms, key=lambda m: m.workload.vus):
            rss_mb = m.proc.maxrss_kb / 1024
            if m.proc.killed:
                lines.append(f"| {LABELS[client]} | {m.workload.vus:,} | > {rss_mb:,.0f} "
                             f"({m.proc.killed}) | | | | |")
                continue
            w = m.workload
            schedule = f"{m.requests / (w.vus * w.duration_s / w.think_s):.0%}" if w.think_s > 0 else ""
            marginal = ""
            if prev is not None and not prev.proc.killed:
                added = m.workload.vus - prev.workload.vus
                marginal = f"{(m.proc.maxrss_kb - prev.proc.maxrss_kb) / added:,.1f}"
            lines.append(f"| {LABELS[client]} | {m.workload.vus:,} | {rss_mb:,.1f} | "
                         f"{m.proc.maxrss_kb / m.workload.vus:,.1f} | {marginal} | {m.requests:,} | "
                         f"{schedule} |")
            prev = m
    notes = [f"- {LABELS[m.client]} at {m.workload.vus:,} VUs: {m.note}" for m in results if m.note]
    lines += ["", "KB per added VU: the growth in peak RSS from the row above, per VU added "
              "(what each VU costs once the process itself is paid for). Of schedule: requests "
              "sent / (VUs x duration / think time), the share of its schedule the client kept; "
              "far below 100% means it ran out of CPU (every client has one CPU here) and its "
              "VUs spent the time waiting rather than sleeping."]
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
            "--mem-duration", f"{args.mem_duration:g}", "--think", f"{args.think:g}",
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
    p.add_argument("--only", choices=("throughput", "memory"), help="run one part only")
    p.add_argument("--vus", type=int, default=50, help="throughput: concurrent VUs (50)")
    p.add_argument("--duration", type=float, default=10.0, help="throughput: seconds per run (10)")
    p.add_argument("--repeat", type=int, default=3, help="throughput: runs per client; median (3)")
    p.add_argument("--mem-vus", type=_int_list, default=[1000, 10000],
                   help="memory: VU counts, comma-separated (1000,10000)")
    p.add_argument("--mem-duration", type=float, default=15.0, help="memory: seconds per run (15)")
    p.add_argument("--think", type=float, default=1.0, help="memory: sleep after each request (1)")
    p.add_argument("--mem-limit-mb", type=int, default=16384,
                   help="stop a client whose RSS passes this (16384)")
    p.add_argument("--clients", type=_clients, default=CLIENTS,
                   help="comma-separated subset of loadaction,bare,k6 (all)")
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
    text = report(sections, tools, kind, args, server_cpus, client_cpus)
    print(text)
    if not args.no_write:
        args.results.write_text(text)
        log(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
