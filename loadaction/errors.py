"""Errors users can act on, and the exit codes the CLI maps them to.

Every error the tool expects carries a location and a hint, so the CLI can
print one line (`plan.yml:14: unknown key 'executer' (did you mean 'executor'?)`)
instead of a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes, shared with k6 where k6 has one (99: thresholds crossed)."""

    OK = 0
    CRASH = 1
    INVALID = 2
    NOT_CARRIED_OUT = 3
    THRESHOLDS_FAILED = 99


@dataclass(frozen=True, slots=True)
class Source:
    """Where a value came from, kept so errors and annotations can point at it."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class LoadactionError(Exception):
    """Base for expected failures; `exit_code` tells the CLI how to end."""

    exit_code: ExitCode = ExitCode.CRASH

    def __init__(self, message: str, source: Source | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.source}: {self.message}" if self.source else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class PlanError(LoadactionError):
    """The plan or the inputs are invalid: nothing was sent."""

    exit_code = ExitCode.INVALID


class RunError(LoadactionError):
    """The run could not be carried out (unreachable target, setup failed, cancelled)."""

    exit_code = ExitCode.NOT_CARRIED_OUT


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint for a misspelt name, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
