#!/usr/bin/env python3
"""Soak benchmark: does loadaction's own memory stay flat over a 30-minute run?

Not run by CI or the test suite: it takes 35 minutes. Run it from the repository root:

    python bench/soak.py --out /tmp/soak-bench/soak          # the soak profile, ~35 min
    python bench/soak.py --profile pr --interval 1 --out /tmp/soak-bench/trial   # a trial, under a minute

The question (issue 12): a soak test runs for half an hour or more, so the
generator itself must not leak: "no memory leaks" is a claim about the target
that a leaking generator would spoil. The demo target (`loadaction demo-target`,
SQLite in memory) is started in its own process, so its CPU and memory do not
count; then `loadaction run scenarios/ticketing.yml --profile soak --scenario
ticket-purchase` runs against it (30 VUs: 2 min ramp up, 30 min held, 2 min
down; the plan's setup seeds the event). The harness reads the run's VmRSS
from /proc/<pid>/status every `--interval` seconds (psutil is not a
dependency; /proc is what it would read) until the run exits.

Reported: RSS at the end of the ramp up (the warm-up: every VU, connection and
metric series exists by then), RSS at the start of the ramp down (the end of
the held load; later samples include the ramp down and building the report),
the maximum, the growth from warm-up to end in per cent, and the least-squares
slope over the held phase in MB per hour. The goal is growth < 5%. Both times
come from the loaded plan's stages, so `--profile pr` (a 4.5 s ramp, 18 s held)
is the same measurement, short. Arguments after `--` go to `loadaction run`.

Writes OUT/samples.csv (t_s, rss_kb, cpu_s), OUT/summary.md, OUT/meta.json
(the command, its exit code and wall time: `--again` writes the summary again
from these two files) and the run's results.json under OUT/run/.

`--trace T1,T2` finds what grows: the run is started under tracemalloc (by
this script's `_traced` mode, in the same process as loadaction) and takes
a snapshot T1 and T2 seconds in; OUT/tracemalloc.txt has RSS and traced
memory at both, and the 30 largest differences by line and by traceback.
tracemalloc costs memory and CPU of its own: a traced run's RSS is not the
figure, only a pointer to where it goes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR))

from bench import stop_process  # noqa: E402  (bench/bench.py, beside this script)
from loadaction.plan import load_plan  # noqa: E402
from loadaction.plan.model import RampingVUs  # noqa: E402

PLAN = REPO_DIR / "scenarios" / "ticketing.yml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_ENV = ("SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "STRIPE_WEBHOOK_SECRET")


@dataclass(frozen=True)
class Sample:
    t_s: float  # since the run started
    rss_kb: int
    cpu_s: float


@dataclass(frozen=True)
class Phases:
    """Where the warm-up ends and the held load ends, in seconds from the start."""

    warm_s: float
    held_end_s: float


def read_sample(pid: int, t_s: float) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # exited between two samples
    rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
    if rss is None:
        return None  # a zombie has no VmRSS
    fields = stat.rsplit(")", 1)[1].split()  # fields[11], [12]: utime, stime (stat(5) 14, 15)
    return Sample(t_s, rss, (int(fields[11]) + int(fields[12])) / CLK_TCK)


def start_target(python: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The demo target in its own process; its `export` lines give URL and keys."""
    proc = subprocess.Popen([python, "-m", "loadaction", "demo-target"], cwd=REPO_DIR, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    env: dict[str, str] = {}
    assert proc.stdout is not None
    while not all(name in env for name in TARGET_ENV):
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the demo target exited ({proc.wait()}) before printing its URL")
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            name, _, value = words[1].partition("=")
            env[name] = value
    return proc, env


def phases(profile: str, scenario: str, env: dict[str, str]) -> Phases:
    """Warm-up ends with the first stage; the held load ends where the last stage begins."""
    plan = load_plan(PLAN, target=env["SUPABASE_URL"], profile=profile, scenarios=[scenario],
                     env={**os.environ, **env})
    (chosen,) = plan.scenarios
    executor = chosen.executor
    if not isinstance(executor, RampingVUs) or len(executor.stages) < 3:
        raise SystemExit(f"{scenario} at profile {profile} is not a ramp up, hold, ramp down")
    starts = [chosen.start_time]
    for stage in executor.stages:
        starts.append(starts[-1] + stage.duration)
    return Phases(warm_s=starts[1], held_end_s=starts[-2])


def at(samples: list[Sample], t_s: float) -> Sample:
    """The sample nearest to t_s (each is taken a little after its tick)."""
    return min(samples, key=lambda s: abs(s.t_s - t_s))


def slope_mb_per_h(samples: list[Sample]) -> float:
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(s.t_s for s in samples) / n
    mr = sum(s.rss_kb for s in samples) / n
    var = sum((s.t_s - mt) ** 2 for s in samples)
    cov = sum((s.t_s - mt) * (s.rss_kb - mr) for s in samples)
    return cov / var * 3600 / 1024 if var else 0.0


def commit() -> str:
    """The code the run loads: taken as it starts (later commits do not change it)."""
    return subprocess.run(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
                          capture_output=True, text=True).stdout.strip()


def machine(started_at: str) -> dict[str, str]:
    """When, at which commit, how busy (the load average as the run ends), for meta.json."""
    return {"at": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC", "commit": started_at,
            "cpus": str(os.cpu_count()), "load": f"{os.getloadavg()[0]:.2f}"}


def summary(args: argparse.Namespace, command: list[str], ph: Phases, samples: list[Sample],
            code: int, wall_s: float, info: dict[str, str]) -> str:
    warm, end = at(samples, ph.warm_s), at(samples, ph.held_end_s)
    peak = max(samples, key=lambda s: s.rss_kb)
    held = [s for s in samples if ph.warm_s <= s.t_s <= ph.held_end_s]
    growth = (end.rss_kb - warm.rss_kb) / warm.rss_kb * 100
    # a leak keeps growing; what fills once (buffers, caches) is done by mid-run
    middle = at(samples, (ph.warm_s + ph.held_end_s) / 2)
    second_half = [s for s in held if s.t_s >= middle.t_s]
    late = (end.rss_kb - middle.rss_kb) / middle.rss_kb * 100
    mb = lambda kb: f"{kb / 1024:.1f} MB"  # noqa: E731
    verdict = "met" if growth < 5 else "MISSED"
    return "\n".join([
        f"Soak, profile `{args.profile}`, scenario `{args.scenario}`, {info['at']}, "
        f"commit {info['commit']}, {info['cpus']} CPUs, load average {info['load']} at the end",
        "",
        f"    python bench/soak.py {shlex.join(args.argv)}",
        "",
        "which ran, against the demo target in its own process:",
        "",
        f"    {shlex.join(command)}",
        "",
        "| | t | RSS |",
        "|---|---:|---:|",
        f"| start (first sample) | {samples[0].t_s:.0f} s | {mb(samples[0].rss_kb)} |",
        f"| after warm-up (end of the ramp up) | {warm.t_s:.0f} s | {mb(warm.rss_kb)} |",
        f"| middle of the held load | {middle.t_s:.0f} s | {mb(middle.rss_kb)} |",
        f"| end of the held load | {end.t_s:.0f} s | {mb(end.rss_kb)} |",
        f"| max | {peak.t_s:.0f} s | {mb(peak.rss_kb)} |",
        f"| last sample (ramp down, report) | {samples[-1].t_s:.0f} s | {mb(samples[-1].rss_kb)} |",
        "",
        f"Growth from warm-up to end: **{growth:+.2f}%** (goal < 5%: {verdict}); slope over the "
        f"held load {slope_mb_per_h(held):+.2f} MB/h ({len(held)} samples every {args.interval:g} s); "
        f"CPU {samples[-1].cpu_s:.1f} s over {wall_s:.0f} s wall; exit code {code}.",
        f"Over the second half of the held load: {late:+.2f}%, slope "
        f"{slope_mb_per_h(second_half):+.2f} MB/h.",
        "",
    ])


def traced(argv: list[str]) -> int:
    """`_traced T1,T2 OUT -- loadaction-args`: loadaction in this process, under tracemalloc."""
    import threading
    import tracemalloc
    times, out, rest = argv[0], Path(argv[1]), argv[2:]
    t1, t2 = (float(t) for t in times.split(","))
    tracemalloc.start(8)
    began = time.monotonic()

    def rss_mb() -> float:
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmRSS:")) / 1024

    def snapshots() -> None:
        time.sleep(t1)
        first, rss1, traced1 = tracemalloc.take_snapshot(), rss_mb(), tracemalloc.get_traced_memory()[0]
        time.sleep(t2 - t1)
        second, rss2, traced2 = tracemalloc.take_snapshot(), rss_mb(), tracemalloc.get_traced_memory()[0]
        own = [tracemalloc.Filter(False, tracemalloc.__file__)]
        first, second = first.filter_traces(own), second.filter_traces(own)
        lines = [f"at {t1:g} s and {t2:g} s: RSS {rss1:.1f} -> {rss2:.1f} MB, "
                 f"traced {traced1 / 2**20:.1f} -> {traced2 / 2**20:.1f} MB"]
        for key in ("lineno", "traceback"):
            lines.append(f"==== largest differences by {key}")
            for stat in second.compare_to(first, key)[:30]:
                lines.append(f"{stat.size_diff / 1024:+.1f} KB {stat.count_diff:+d} blocks")
                lines += stat.traceback.format() if key == "traceback" else [f"   {stat.traceback[0]}"]
        out.write_text("\n".join(lines) + "\n")

    thread = threading.Thread(target=snapshots, daemon=True)
    thread.start()
    from loadaction.cli import main as loadaction_main
    code = loadaction_main(rest)
    thread.join(timeout=max(0.0, t2 - (time.monotonic() - began)) + 120)  # T2 past the end: no file
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_traced"]:
        return traced(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="soak")
    parser.add_argument("--scenario", default="ticket-purchase")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--out", type=Path, required=True, help="directory for samples and summary")
    parser.add_argument("--python", default=str(REPO_DIR / ".venv" / "bin" / "python"))
    parser.add_argument("--trace", metavar="T1,T2",
                        help="run under tracemalloc, snapshots T1 and T2 s in (OUT/tracemalloc.txt)")
    parser.add_argument("run_args", nargs="*", help="after --: more `loadaction run` arguments")
    parser.add_argument("--again", action="store_true",
                        help="no run: the summary again from OUT/samples.csv and OUT/meta.json")
    args = parser.parse_args(argv)
    args.argv = argv
    args.out.mkdir(parents=True, exist_ok=True)
    if args.again:
        meta = json.loads((args.out / "meta.json").read_text())
        args.argv = meta["argv"]
        rows = (args.out / "samples.csv").read_text().splitlines()[1:]
        samples = [Sample(float(t), int(rss), float(cpu)) for t, rss, cpu in
                   (row.split(",") for row in rows)]
        placeholders = {name: "http://127.0.0.1:9" if name == "SUPABASE_URL" else "placeholder"
                        for name in TARGET_ENV}
        ph = phases(args.profile, args.scenario, placeholders)
        text = summary(args, meta["command"], ph, samples, meta["code"], meta["wall_s"],
                       meta["machine"])
        (args.out / "summary.md").write_text(text)
        print(text)
        return 0

    code_at = commit()
    target, env = start_target(args.python)
    try:
        ph = phases(args.profile, args.scenario, env)
        runner = ([str(Path(__file__).resolve()), "_traced", args.trace, str(args.out / "tracemalloc.txt")]
                  if args.trace else ["-m", "loadaction"])
        command = [args.python, *runner, "run", str(PLAN.relative_to(REPO_DIR)),
                   "--profile", args.profile, "--scenario", args.scenario,
                   "--out", str(args.out / "run"), "--quiet", *args.run_args]
        log = (args.out / "run.log").open("w")
        began = time.monotonic()
        run = subprocess.Popen(command, cwd=REPO_DIR, env={**os.environ, **env},
                               stdout=log, stderr=subprocess.STDOUT)
        samples: list[Sample] = []
        with (args.out / "samples.csv").open("w") as csv:
            csv.write("t_s,rss_kb,cpu_s\n")
            tick = 0
            while run.poll() is None:
                sample = read_sample(run.pid, time.monotonic() - began)
                if sample is not None:
                    samples.append(sample)
                    csv.write(f"{sample.t_s:.1f},{sample.rss_kb},{sample.cpu_s:.2f}\n")
                    csv.flush()
                tick += 1  # on a schedule from the start, not drifting by the read's own time
                time.sleep(max(0.0, began + tick * args.interval - time.monotonic()))
        code = run.wait()
        wall = time.monotonic() - began
    finally:
        stop_process(target)
    if not samples or samples[-1].t_s < ph.held_end_s:
        print(f"the run ended (exit {code}) before its held load did; see {args.out / 'run.log'}",
              file=sys.stderr)
        return 1
    info = machine(code_at)
    (args.out / "meta.json").write_text(json.dumps(
        {"argv": argv, "command": command, "code": code, "wall_s": wall, "machine": info}))
    text = summary(args, command, ph, samples, code, wall, info)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
