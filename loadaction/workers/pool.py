"""The parent side of `--workers N`: N worker processes, each running one
segment of the sequence 0,1/N,...,1, whose snapshots are merged into the
parent Run's registry as they arrive (engine/runner.LoadSource).

Workers are started in their own session, so a Ctrl-C at the terminal
reaches the parent alone, which then tells each worker (`stop`, a second
time `hard`): one decision, one exit code. A worker that ends without its
`done` (killed, crashed) is named in a notice, with what it had sent kept;
the others go on.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadaction.chaos.timeline import FaultRecord
from loadaction.engine.hooks import LoadContext
from loadaction.engine.runner import ErrorRecord, ScenarioProgress, ScenarioSummary
from loadaction.engine.status import RunStatus
from loadaction.metrics.registry import Registry
from loadaction.metrics.sinks import TrendSink
from loadaction.results.merge import merged_point  # the one way points are summed
from loadaction.plan.segments import FULL_TUPLE, Execution
from loadaction.workers.launch import LoadArgs, segment_tuple, within_to_json
from loadaction.workers.wire import apply_metrics, encode

WORKER_PROGRAM = ("-m", "loadaction.workers.child")  # run by this Python
SNAPSHOT_INTERVAL_S = 1.0
HARD_STOP_GRACE_S = 5.0  # after `hard`, a worker still running is killed
_STOPS = frozenset({RunStatus.CAPPED, RunStatus.FAILED})  # a worker's end that ends the run


@dataclass
class Worker:
    index: int
    segment: str
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    done: dict[str, Any] | None = None
    points: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    scenarios: list[Mapping[str, Any]] = field(default_factory=list)
    errors: list[list[Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        pid = f", pid {self.proc.pid}" if self.proc is not None else ""
        return f"worker {self.index + 1} (segment {self.segment}{pid})"


def _how(returncode: int | None) -> str:
    if returncode is None:
        return "ended its output"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with {returncode}"


class WorkerPool:
    """A LoadSource of `count` worker processes running `load`'s plan."""

    def __init__(self, count: int, load: LoadArgs, *, http_client: str | None = None,
                 announce: Callable[[str], None] = lambda line: None,
                 interval_s: float = SNAPSHOT_INTERVAL_S,
                 within: Execution = FULL_TUPLE,
                 program: Sequence[str] = WORKER_PROGRAM) -> None:
        """`within`: the share of the test this process runs (--shard): the
        workers split it. `program`: the worker's arguments to this Python
        (a test's stand-in for a worker that misbehaves)."""
        self.program = tuple(program)
        self.load = load
        self.within = within
        self.http_client = http_client
        self.announce = announce
        self.interval_s = interval_s
        self.workers = [Worker(i, str(segment_tuple(i, count, within).segment))
                        for i in range(count)]
        self.processes = count
        self._notices: dict[str, None] = {}
        self._ctx: LoadContext | None = None
        self._hard = False

    # ------------------------------------------------------------ starting

    async def _start(self, worker: Worker, vars: Mapping[str, Any]) -> None:
        proc = worker.proc = await asyncio.create_subprocess_exec(
            sys.executable, *self.program, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, start_new_session=True, limit=2**24)
        assert proc.stdin is not None and proc.stdout is not None
        spec = {"index": worker.index, "count": len(self.workers),
                "within": within_to_json(self.within), "load": self.load.to_json(),
                "vars": dict(vars), "http_client": self.http_client, "interval_s": self.interval_s}
        proc.stdin.write(encode(spec))
        line = await proc.stdout.readline()
        message = json.loads(line) if line else {}
        if message.get("type") == "ready":
            worker.ready = True
        else:
            worker.done = message or None

    async def prepare(self, vars: Mapping[str, Any]) -> None:
        async with asyncio.TaskGroup() as tg:
            for worker in self.workers:
                tg.create_task(self._start(worker, vars))
        pids = ", ".join(str(w.proc.pid) for w in self.workers if w.proc is not None)
        self.announce(f"loadaction: {len(self.workers)} workers started (pids {pids})")

    # ------------------------------------------------------------ the load

    def _send(self, message: Mapping[str, Any], *, but: Worker | None = None) -> None:
        line = encode(message)
        for worker in self.workers:
            proc = worker.proc
            if worker is but:
                continue
            if proc is None or proc.returncode is not None or proc.stdin is None:
                continue
            if not proc.stdin.is_closing():
                try:
                    proc.stdin.write(line)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # it is gone: its reader reports it

    async def run(self, ctx: LoadContext, registry: Registry) -> None:
        self._ctx = ctx
        if not any(w.ready for w in self.workers):
            ctx.request_stop(RunStatus.FAILED, "no worker process started")
        self._send({"type": "go", "t0": ctx.clock.t0})  # one run clock for all (engine/clock.py)
        try:
            async with asyncio.TaskGroup() as tg:
                readers = [tg.create_task(self._read(w, registry)) for w in self.workers]
                stopper = tg.create_task(self._stop_when(ctx.stop))
                await asyncio.wait(readers)
                stopper.cancel()
        except BaseException:
            self._kill()  # a bug here: never leave load running behind
            raise

    async def discard(self) -> None:
        """Never told to go: each worker is told to stop (it then ends before
        its first iteration), given HARD_STOP_GRACE_S, then killed."""
        self._send({"type": "stop"})
        for worker in self.workers:
            proc = worker.proc
            if proc is None:
                continue
            try:
                await asyncio.wait_for(proc.wait(), HARD_STOP_GRACE_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def _stop_when(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._send({"type": "stop"})

    def hard_stop(self) -> None:
        if self._hard:
            return
        self._hard = True
        self._send({"type": "hard"})
        asyncio.get_running_loop().call_later(HARD_STOP_GRACE_S, self._kill)

    def fault_window(self, record: FaultRecord) -> None:
        """A server-side fault's window changed here: the workers attribute
        their samples by it (chaos/timeline.py, `follower`)."""
        self._send({"type": "window", "fault": record.fault.name,
                    "planned_at_s": record.planned_at_s, "started_at_s": record.started_at_s,
                    "ended_at_s": record.ended_at_s})

    def _kill(self) -> None:
        for worker in self.workers:
            if worker.proc is not None and worker.proc.returncode is None:
                worker.proc.kill()

    async def _read(self, worker: Worker, registry: Registry) -> None:
        proc = worker.proc
        if proc is None or not worker.ready:  # it ended (or failed to load the plan) unready
            self._lost(worker, None if proc is None else await proc.wait())
            return
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            if not line.endswith(b"\n"):
                break  # cut off: it died writing it (what it sent before is kept)
            message = json.loads(line)
            if message["type"] == "write":  # a watched write answered there: the others expect it
                self._send(message, but=worker)
            elif message["type"] == "snapshot":
                self._apply(worker, message, registry)
            elif message["type"] == "done":
                worker.done = message
        await proc.wait()
        if worker.done is None:
            self._lost(worker, proc.returncode)
            return
        status = RunStatus(worker.done["status"])
        reason = worker.done.get("reason") or status.value
        if status is RunStatus.CRASHED:
            self._notice(f"{worker.name} crashed ({reason}); the other workers went on, "
                         f"its samples up to then are kept")
        elif status in _STOPS and self._ctx is not None:
            self._ctx.request_stop(status, f"{worker.name}: {reason}")

    def _lost(self, worker: Worker, returncode: int | None) -> None:
        at = f" at {self._ctx.clock.elapsed():.1f}s" if self._ctx is not None else ""
        if not worker.ready and worker.done is not None:
            how = worker.done.get("reason") or "could not start"
        else:
            how = _how(returncode)
        now = self._ctx.clock.elapsed() if self._ctx is not None else 0.0
        worker.scenarios = [{**row, "vus": 0, "ended": True, "end_s": row.get("end_s") or now}
                            for row in worker.scenarios]
        if not worker.ready:
            self._notice(f"{worker.name} could not start ({how}); the other workers went on")
        else:
            self._notice(f"{worker.name} died ({how}){at}; its samples up to its last "
                         f"snapshot are kept, the other workers went on")

    def _notice(self, text: str) -> None:
        self._notices[text] = None
        self.announce(f"loadaction: {text}")

    def _apply(self, worker: Worker, message: Mapping[str, Any], registry: Registry) -> None:
        apply_metrics(registry, message["metrics"])
        for name, points in message["series"].items():
            worker.points.setdefault(name, []).extend(points)
        worker.scenarios = message["scenarios"]
        worker.errors = message["errors"]
        for text in message["notices"]:
            self._notices[text] = None

    # ------------------------------------------------------------ reading it

    def vus(self) -> tuple[int, int] | None:
        rows = [s for w in self.workers for s in w.scenarios]
        if not rows:
            return None
        return sum(s["vus"] for s in rows), sum(s["vus_max"] for s in rows)

    def duration_s(self) -> float | None:
        """The longest worker's load (they started together)."""
        ends = [w.done["load_s"] for w in self.workers
                if w.done is not None and w.done.get("load_s") is not None]
        return max(ends, default=None)

    def _by_scenario(self) -> dict[str, list[Mapping[str, Any]]]:
        out: dict[str, list[Mapping[str, Any]]] = {}
        for worker in self.workers:
            for row in worker.scenarios:
                out.setdefault(row["name"], []).append(row)
        return out

    def series(self) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        """Every worker's n-th point summed: they start their clocks together."""
        names = dict.fromkeys(name for w in self.workers for name in w.points)
        out = {}
        for name in names:
            lists = [w.points.get(name, []) for w in self.workers]
            out[name] = [merged_point([(p[k]["t"], p[k]) for p in lists if k < len(p)])
                         for k in range(max(len(p) for p in lists))]
        return out

    def progress(self, since: float, window: int) -> tuple[ScenarioProgress, ...]:
        now = self._ctx.clock.elapsed() if self._ctx is not None else 0.0
        rows = []
        for name, parts in self._by_scenario().items():
            running = any(p["started"] and not p["ended"] for p in parts)
            if not any(p["started"] for p in parts):
                continue
            elapsed = max(p["elapsed_s"] for p in parts)
            if not running and max(p["end_s"] or now for p in parts) < since:
                continue  # done before the last report: shown once
            points = [p for w in self.workers for p in w.points.get(name, [])[-window:]]
            reqs = sum(p["reqs"] for p in points)
            failed = sum(p["failed"] for p in points)
            merged = TrendSink()
            for p in points:
                if p["hdr"]:
                    merged.merge(TrendSink.from_summary({"hdr": p["hdr"]}))
            seconds = max((len(w.points.get(name, [])[-window:]) for w in self.workers), default=1)
            rows.append(ScenarioProgress(
                name=name, elapsed_s=elapsed, planned_s=parts[0]["planned_s"],
                vus=sum(p["vus"] for p in parts), rps=reqs / max(seconds, 1),
                p95_ms=merged.percentile(95) if merged.count else None,
                error_rate=failed / reqs if reqs else None, running=running))
        return tuple(rows)

    def summaries(self) -> tuple[ScenarioSummary, ...]:
        return tuple(
            ScenarioSummary(name, parts[0]["executor"], parts[0]["exec"], parts[0]["start_time_s"],
                            parts[0]["planned_s"], parts[0]["graceful_stop_s"],
                            sum(p["iterations"] for p in parts),
                            sum(p["interrupted"] for p in parts),
                            sum(p["dropped"] for p in parts), sum(p["vus_max"] for p in parts))
            for name, parts in self._by_scenario().items())

    def errors(self) -> tuple[ErrorRecord, ...]:
        merged: dict[tuple[str, str], ErrorRecord] = {}
        for worker in self.workers:
            for scenario, message, kind, count, first in worker.errors:
                had = merged.get((scenario, message))
                if had is not None:
                    count += had.count
                    first = min(first, had.first_seen_s)
                merged[(scenario, message)] = ErrorRecord(scenario, message, kind, count, first)
        return tuple(merged.values())

    def notices(self) -> tuple[str, ...]:
        return tuple(self._notices)
