"""Running one hostile input through the real CLI, bounded.

Each case runs `python -m loadaction ...` in a subprocess with an address-space
limit and a wall-clock timeout, so a case that would hang or blow up memory
fails its test instead of taking the suite (or the machine) down. A case
passes when the process exits with the expected code, says what is wrong in
one line, and prints no traceback.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MEMORY_LIMIT_BYTES = 1 << 30  # 1 GiB of address space: python + aiohttp need ~300 MB
TIMEOUT_S = 30.0  # a wall-clock bound for a case; an honest rejection takes well under 2 s


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def _limit_memory() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def run_cli(args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
            timeout_s: float = TIMEOUT_S, stdin: str | None = None,
            program: Sequence[str] = ("-m", "loadaction")) -> Outcome:
    """`loadaction ARGS` (or `python PROGRAM ARGS`, e.g. the action's
    entrypoint.py) in a bounded subprocess; a timeout kills it and fails the test."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("GITHUB_ACTIONS", None)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, *program, *args], cwd=cwd, env=full_env,
                            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_limit_memory, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"loadaction {' '.join(args)} still running after {timeout_s:g}s;"
                             f" stderr: {err[-2000:]}") from None
    return Outcome(proc.returncode, out, err, time.monotonic() - start)


def assert_rejected(outcome: Outcome, *, code: int = 2, says: str | Sequence[str] = (),
                    where: str | None = None) -> None:
    """Exit `code`, no traceback, and one error line that contains `says` (and
    `where`, e.g. 'plan.yml:3', when the input has a location)."""
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert outcome.code == code, (outcome.code, outcome.stderr[-2000:])
    lines = [line for line in outcome.error_lines if not line.startswith("warning:")]
    assert len(lines) == 1, outcome.stderr[-2000:]
    wanted = [says] if isinstance(says, str) else list(says)
    for text in wanted:
        assert text in lines[0], (text, lines[0])
    if where is not None:
        assert where in lines[0], (where, lines[0])
