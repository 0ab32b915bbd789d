"""The capacity search itself, without I/O: which rate to try next, given
the verdicts of the steps so far, and what the search established.

An exponential probe doubles the rate while steps pass; bisection then
narrows the bracket between the highest pass and the lowest fail until it is
within `precision` of the pass. A first step that fails halves instead, down
to a floor. An `unknown` step (the generator, not the target, could not keep
up) ends the search: past it nothing is known, so it is never read as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

FLOOR_RATE = 0.1
"""Iterations per second below which halving stops: one every ten seconds."""


class StepVerdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"  # the generator could not keep up, or a cap stopped the step


class LimitedBy(StrEnum):
    """What ended the search."""

    TARGET = "target"  # bracketed within precision (or failing down to the floor)
    GENERATOR = "generator"  # a step was unknown: this machine could not drive more
    CAP = "cap"  # the max-rate safety cap passed, or a plan cap stopped a step
    STEPS = "steps"  # --max-steps ran out first


@dataclass(frozen=True, slots=True)
class SearchConfig:
    start_rate: float
    max_rate: float
    precision: float = 0.05
    max_steps: int = 16
    floor_rate: float = FLOOR_RATE

    def __post_init__(self) -> None:
        if not 0 < self.start_rate <= self.max_rate:
            raise ValueError("the start rate must be positive and at most the max rate")
        if self.precision <= 0 or self.max_steps < 1:
            raise ValueError("precision and max_steps must be positive")


@dataclass(frozen=True, slots=True)
class SearchResult:
    rate: float | None  # the highest passing rate
    passed: float | None  # the bracket [passed, failed)
    failed: float | None  # None: no step failed (a cap or an unknown step ended it)
    limited_by: LimitedBy


class Search:
    """Feed it each step's verdict (`record`); `next_rate()` is None when done."""

    def __init__(self, config: SearchConfig) -> None:
        self.config = config
        self.steps = 0
        self.passed: float | None = None  # highest PASS
        self.failed: float | None = None  # lowest FAIL
        self.unknown: float | None = None
        self._stopped: LimitedBy | None = None

    def record(self, rate: float, verdict: StepVerdict, *, cap: bool = False) -> None:
        """`cap`: the step was stopped by a plan safety cap (unknown by nature)."""
        self.steps += 1
        if verdict is StepVerdict.PASS:
            self.passed = rate if self.passed is None else max(self.passed, rate)
        elif verdict is StepVerdict.FAIL:
            self.failed = rate if self.failed is None else min(self.failed, rate)
        else:
            self.unknown = rate
            self._stopped = LimitedBy.CAP if cap else LimitedBy.GENERATOR

    def stop(self, why: LimitedBy) -> None:
        """End the search from outside (a cap on the whole search ran out)."""
        self._stopped = why

    def next_rate(self) -> float | None:
        if self._end() is not None:
            return None
        cfg = self.config
        if self.steps == 0:
            return cfg.start_rate
        if self.passed is None:
            assert self.failed is not None
            return self.failed / 2
        if self.failed is None:
            return min(self.passed * 2, cfg.max_rate)
        return (self.passed + self.failed) / 2

    def _end(self) -> LimitedBy | None:
        cfg = self.config
        if self._stopped is not None:
            return self._stopped
        if self.steps == 0:
            return None
        if self.passed is None:
            assert self.failed is not None
            if self.failed / 2 < cfg.floor_rate:
                return LimitedBy.TARGET
        elif self.failed is None:
            if self.passed >= cfg.max_rate:
                return LimitedBy.CAP
        elif (self.failed - self.passed) / self.passed <= cfg.precision:
            return LimitedBy.TARGET
        if self.steps >= cfg.max_steps:
            return LimitedBy.STEPS
        return None

    def result(self) -> SearchResult:
        """What the steps so far established (call once `next_rate()` is None,
        or at any time for a partial answer: an interrupted search is `steps`)."""
        ended = self._end() or LimitedBy.STEPS
        return SearchResult(self.passed, self.passed, self.failed, ended)
