"""How a run ended: compared by code as an enum, written to JSON as its value."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    COMPLETE = "complete"
    ABORTED = "aborted"  # a threshold with abortOnFail crossed
    CANCELLED = "cancelled"  # SIGINT / SIGTERM
    CAPPED = "capped"  # a safety cap (max-requests, max-duration) stopped it
    FAILED = "failed"  # it could not be carried out: unreachable target, setup failed
    CRASHED = "crashed"  # a bug in loadaction
