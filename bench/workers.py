#!/usr/bin/env python3
"""Requests per second with `--workers auto` against `--workers 1`, same server.

Not run by CI or the test suite. From the repository root:

    python bench/workers.py                    # 20 s per run, 3 runs each, interleaved
    python bench/workers.py --duration 5 --repeat 1 --vus 64

The target is bench.py's: one nginx worker process (bench/nginx.conf, a tiny
static 200) on 127.0.0.1, or its aiohttp stand-in when nginx is missing
(`start_server`, imported, not copied). Unpinned by default: the server's
one worker process competes with the client's processes for the machine's
CPUs, and the report says how many there were. `--pin` gives the server the
last CPU and the client the others (then `auto` is their count).

Each run is `loadaction run` on a one-request constant-vus plan with no
think time; requests/s is its own results.json (`http_reqs` count over the
load's duration), CPU is the client process tree's user + sys (the workers
are its children and are waited for). Runs alternate 1, auto, 1, auto, ...
so a drift in the machine hits both; the median run of each is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import REPO_DIR, Workload, loadaction_plan, pin_plan, start_server  # noqa: E402


def run_once(plan: Path, url: str, out: Path, workers: str,
             cpus: set[int] | None) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "loadaction", "run", str(plan), "--target",
         "/".join(url.split("/", 3)[:3]), "--out", str(out), "--quiet", "--workers", workers],
        cwd=REPO_DIR, stdout=subprocess.DEVNULL, check=False,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    wall = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc = json.loads((out / "results.json").read_text())
    requests = doc["metrics"]["http_reqs"]["total"]["count"]
    load_s = doc["timing"]["load_s"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"requests": requests, "rps": requests / load_s, "cpu_s": cpu, "wall_s": wall,
            "failed": doc["metrics"]["http_req_failed"]["total"]["passes"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run (20)")
    parser.add_argument("--vus", type=int, default=64, help="VUs in all, split across workers")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (3)")
    parser.add_argument("--pin", action="store_true",
                        help="server on the last CPU, the client on the others")
    parser.add_argument("--server", choices=("nginx", "aiohttp"), default="nginx")
    args = parser.parse_args(argv)
    server_cpus, client_cpus = pin_plan(args.pin)
    usable = len(client_cpus) if client_cpus else len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="loadaction-workers-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with start_server(tmp, server_cpus, args.server) as server:
            plan = tmp / "plan.yml"
            plan.write_text(loadaction_plan(Workload(server.url, args.vus, args.duration, 0.0)))
            runs: dict[str, list[dict[str, float]]] = {"1": [], "auto": []}
            for i in range(args.repeat):
                for workers in runs:
                    result = run_once(plan, server.url, tmp / f"{workers}-{i}", workers,
                                      client_cpus)
                    runs[workers].append(result)
                    print(f"bench: --workers {workers}: {result['rps']:,.0f} req/s, "
                          f"{result['cpu_s']:.1f} CPU-s", file=sys.stderr)
    cores = len(server_cpus) if server_cpus else len(os.sched_getaffinity(0))
    print(f"server: {server.kind}; "
          + (f"pinned to {cores} CPU of its own" if server_cpus else
             f"unpinned, sharing the machine's {cores} CPUs with the client"))
    print(f"client: {usable} usable CPUs (--workers auto = {usable}); {args.vus} VUs, "
          f"{args.duration:g} s, median of {args.repeat}\n")
    print("| --workers | requests/s | requests | client CPU-s | failed |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for workers, results in runs.items():
        rps = median(r["rps"] for r in results)
        medians[workers] = rps
        row = min(results, key=lambda r: abs(r["rps"] - rps))
        print(f"| {workers} | {rps:,.0f} | {row['requests']:,} | {row['cpu_s']:.1f} | "
              f"{row['failed']:,} |")
    print(f"\nauto / 1: {medians['auto'] / medians['1']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
