"""Caps that stop a plan before it does damage: live payment keys and runs
longer than the caller allowed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from loadaction.errors import PlanError, Source
from loadaction.plan.durations import format_seconds
from loadaction.plan.executors import executor_length
from loadaction.plan.model import Scenario

LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")


def check_live_keys(candidates: Iterable[tuple[str, str, Source | None]]) -> None:
    """Refuse the first (description, value, source) holding a live Stripe
    key; the message names where it is, never the value."""
    for what, value, source in candidates:
        if value.startswith(LIVE_KEY_PREFIXES):
            raise PlanError(f"{what} holds a live Stripe key", source,
                            "pass --allow-live-keys to load-test with live keys")


def scheduled_length(scenario: Scenario) -> float:
    """Seconds from the run's start until the scenario must have stopped."""
    return scenario.start_time + executor_length(scenario.executor) + scenario.graceful_stop


def check_max_duration(scenarios: Sequence[Scenario], limit: float | None) -> None:
    if limit is None or not scenarios:
        return
    last = max(scenarios, key=scheduled_length)
    needed = scheduled_length(last)
    if needed > limit:
        raise PlanError(f"the plan needs {format_seconds(needed)} but --max-duration is "
                        f"{format_seconds(limit)}", last.source,
                        "use a shorter --profile or raise --max-duration")
