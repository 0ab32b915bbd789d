"""Runs a command (argv, never a shell) and reads the number it prints."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from loadaction.probes.report import ProbeErrorKind, ProbeFailure, Reading

MAX_OUTPUT_BYTES = 1 << 20


class CommandSampler:
    def __init__(self, argv: Sequence[str], metric: str, timeout_s: float) -> None:
        self.argv = tuple(argv)
        self._metric = metric
        self._timeout = timeout_s

    async def sample(self) -> tuple[list[Reading], list[ProbeFailure]]:
        """stdout's last non-empty line as a float; a non-zero exit, a
        timeout (the process is killed) or anything else is a failure."""
        program = self.argv[0]
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise ProbeFailure(ProbeErrorKind.COMMAND_FAILED,
                               f"{program}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(), self._timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ProbeFailure(ProbeErrorKind.TIMEOUT,
                               f"{program}: no answer within {self._timeout:g}s; killed") from None
        except asyncio.CancelledError:
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            detail = _last_line(err) or _last_line(out)
            raise ProbeFailure(ProbeErrorKind.COMMAND_FAILED,
                               f"{program}: exit {process.returncode}"
                               + (f": {detail}" if detail else ""))
        line = _last_line(out)
        try:
            value = float(line)
        except ValueError:
            raise ProbeFailure(ProbeErrorKind.NOT_A_NUMBER,
                               f"{program}: printed {line[:80]!r}, not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ProbeFailure(ProbeErrorKind.NOT_A_NUMBER, f"{program}: printed {line!r}")
        return [Reading(self._metric, (), value)], []

    async def close(self) -> None:
        pass


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data[-MAX_OUTPUT_BYTES:].decode("utf-8", "replace")
             .splitlines() if line.strip()]
    return lines[-1] if lines else ""
