"""The `command` adapter: a shell command line starts the fault, another stops it.

What it can guarantee: each command runs under `/bin/sh -c` in a process
group of its own, and when it overruns its timeout (or the run is cancelled
while it runs) the whole group is killed, so a stuck `kubectl` or `sleep`
cannot outlive the fault. What it cannot: that the fault expires if the
runner dies; only the command can arrange that (a tool's own TTL flag, or a
backgrounded `sleep "$LOADACTION_FAULT_DURATION_S" && undo`): commands see
LOADACTION_FAULT_NAME and LOADACTION_FAULT_DURATION_S in their environment. Rollback runs the stop
command every time, so it is idempotent only if the command is (`rm -f`,
`iptables -D ... || true`).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from typing import Any

from loadaction.chaos.adapters.base import AdapterError, Render, last_line, render_value
from loadaction.plan.model import CommandFault, Renderable


class CommandAdapter:
    """Runs the fault's start and stop command lines."""

    def __init__(self, fault: CommandFault, render: Render, *, fault_name: str,
                 duration_s: float) -> None:
        self._fault = fault
        self._render = render
        self._env = {**os.environ, "LOADACTION_FAULT_NAME": fault_name,
                     "LOADACTION_FAULT_DURATION_S": f"{duration_s:g}"}

    async def start(self) -> None:
        await self._run(self._fault.start, "start")

    async def rollback(self) -> None:
        await self._run(self._fault.stop, "stop")

    async def _run(self, template: Renderable, phase: str) -> None:
        line: Any = render_value(self._render, template, f"{phase} command")
        if not isinstance(line, str) or not line.strip():
            raise AdapterError(f"{phase} command rendered to nothing")
        await run_shell(line, timeout=self._fault.timeout, phase=phase, env=self._env)


async def run_shell(line: str, *, timeout: float, phase: str,
                    env: Mapping[str, str] | None = None) -> None:
    """Run `line`; AdapterError on a non-zero exit, a signal, or a timeout.

    Messages quote the exit status and stderr's last line, never the command
    line itself: it is rendered, so it may carry secrets.
    """
    try:
        process = await asyncio.create_subprocess_shell(
            line, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, env=env)
    except OSError as exc:
        raise AdapterError(f"{phase} command could not be run: {exc.strerror or exc}") from None
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        await _kill_group(process)
        raise AdapterError(f"{phase} command timed out after {timeout:g} s (its process group was killed)") \
            from None
    except BaseException:
        await _kill_group(process)  # cancelled: the command must not outlive the run
        raise
    code = process.returncode
    if code == 0:
        return
    reason = last_line(stderr.decode(errors="replace"))
    if code is not None and code < 0:
        status = f"was killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() \
            else f"was killed by signal {-code}"
    else:
        status = f"exited with code {code}"
    raise AdapterError(f"{phase} command {status}" + (f": {reason}" if reason else ""))


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the command's process group, children included, and reap the shell.

    The group id is the shell's pid (start_new_session); killing the group
    rather than the shell is what stops a `sleep` the shell is waiting on and
    closes the stderr pipe its children hold open.
    """
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), 5)
    except TimeoutError:
        pass  # unkillable (uninterruptible sleep): nothing more can be done
