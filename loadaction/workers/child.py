"""A worker process: `python -m loadaction.workers.child`, started by the
parent (workers/pool.py), never by hand.

stdin carries the parent's commands, one JSON object per line: first the
spec (plan-loading arguments, the segment, setup's vars), then `go` (with
the load's time 0), `stop` (end gracefully) or `hard` (end in-flight
iterations now), a fault's `window` whenever the parent's chaos timeline
changes one, and the other workers' watched realtime `write`s; its end (the
parent is gone) is a graceful stop. stdout carries `ready`, a snapshot every
interval, each watched realtime `write` as its answer arrives (the parent
hands it to the other workers: engine/realtime.py), and a final snapshot
followed by `done` (the status). Any other output goes to stderr, so nothing
else can corrupt the stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import traceback
from dataclasses import replace

from loadaction.chaos.plugin import ChaosPlugin
from loadaction.engine.runner import Run
from loadaction.engine.status import RunStatus
from loadaction.engine.transports import transport_for
from loadaction.errors import LoadactionError
from loadaction.workers.launch import (
    LoadArgs, segment_tuple, split_limits, within_from_json, worker_plan,
)
from loadaction.workers.wire import Snapshotter, encode


async def _commands(reader: asyncio.StreamReader, run: Run, go: asyncio.Event,
                    chaos: ChaosPlugin | None) -> None:
    """Never ends silently: a command it cannot follow (a bug) ends the
    worker's load, which the parent then reports, rather than leaving it
    deaf to `stop` or waiting for a `go` it has already missed."""
    try:
        await _follow(reader, run, go, chaos)
    except Exception as exc:
        run.control.request_stop(RunStatus.CRASHED, f"worker: bad command from the parent: "
                                                    f"{type(exc).__name__}: {exc}")
        go.set()


async def _follow(reader: asyncio.StreamReader, run: Run, go: asyncio.Event,
                  chaos: ChaosPlugin | None) -> None:
    while line := await reader.readline():
        if not line.endswith(b"\n"):
            break  # cut off: the parent died writing it
        message = json.loads(line)
        command = message["type"]
        if command == "write" and run.state.realtime is not None:
            run.state.realtime.remote_responded(message["write"], message["keys"], message["at"])
        elif command == "window" and chaos is not None:
            chaos.follow(message["fault"], message["planned_at_s"], message["started_at_s"],
                         message["ended_at_s"])
        elif command == "go":
            run.origin = message["t0"]
            go.set()
        elif command == "stop":
            run.control.request_stop(RunStatus.CANCELLED, "stopped by the parent")
            go.set()
        elif command == "hard":
            run.hard_stop()
            go.set()
    run.control.request_stop(RunStatus.CANCELLED, "the parent is gone")
    go.set()


async def _snapshots(snap: Snapshotter, out: asyncio.StreamWriter, interval_s: float) -> None:
    """Written without blocking: a parent slow to read never stalls this
    worker's event loop (its VUs' timings), the snapshot waits in memory."""
    while True:
        await asyncio.sleep(interval_s)
        out.write(encode(snap.snapshot()))


async def _main(reader: asyncio.StreamReader, out: asyncio.StreamWriter) -> int:
    spec = json.loads(await reader.readline())
    index, count, within = spec["index"], spec["count"], within_from_json(spec["within"])
    execution = segment_tuple(index, count, within)
    try:
        plan = LoadArgs.from_json(spec["load"]).load(execution)
    except LoadactionError as exc:
        out.write(encode({"type": "done", "status": RunStatus.FAILED.value, "reason": str(exc)}))
        await out.drain()
        return int(exc.exit_code)
    # the client-side faults are played here, on this worker's requests
    chaos = ChaosPlugin(plan.chaos, follower=True) if plan.chaos else None
    limits = split_limits(plan, index, count, within)
    plan = worker_plan(replace(plan, limits=limits))
    run = Run(plan, transport=transport_for(plan, spec.get("http_client")), vars=spec["vars"],
              plugins=() if chaos is None else (chaos,))
    if (matcher := run.state.realtime) is not None:
        matcher.relay = lambda write, keys, at: out.write(
            encode({"type": "write", "write": write, "keys": dict(keys), "at": at}))
    loop = asyncio.get_running_loop()

    def on_signal() -> None:  # the parent forwards none; someone signalled this worker itself
        if run.control.stop.is_set():
            run.hard_stop()
        else:
            run.control.request_stop(RunStatus.CANCELLED, "signalled")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    go = asyncio.Event()
    commands = asyncio.create_task(_commands(reader, run, go, chaos))
    out.write(encode({"type": "ready", "pid": os.getpid()}))
    await go.wait()
    snap = Snapshotter(run)
    ticker = asyncio.create_task(_snapshots(snap, out, spec["interval_s"]))
    outcome = await run.execute()
    ticker.cancel()
    commands.cancel()
    crash = None if outcome.crash is None else "".join(traceback.format_exception(outcome.crash))
    if crash is not None:
        print(run.masker(crash), file=sys.stderr, end="")
    out.write(encode(snap.snapshot()))
    out.write(encode({"type": "done", "status": outcome.status.value,
                      "reason": run.masker(outcome.reason or ""), "load_s": outcome.timing.load_s}))
    await out.drain()
    return 0


async def _connect() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stream = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print lands on stderr, never in the stream
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stream)
    out = asyncio.StreamWriter(transport, protocol, None, loop)
    try:
        return await _main(reader, out)
    finally:
        out.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(_connect()))
