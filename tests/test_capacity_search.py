"""The capacity search on its own: verdicts in, rates out, no I/O."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadaction.capacity.search import LimitedBy, Search, SearchConfig, SearchResult, StepVerdict

Oracle = Callable[[float], StepVerdict]


def drive(config: SearchConfig, oracle: Oracle) -> tuple[SearchResult, list[float]]:
    search = Search(config)
    tried: list[float] = []
    while (rate := search.next_rate()) is not None:
        tried.append(rate)
        search.record(rate, oracle(rate))
    return search.result(), tried


def boundary(capacity: float) -> Oracle:
    return lambda rate: StepVerdict.PASS if rate <= capacity else StepVerdict.FAIL


def test_doubles_then_bisects_to_the_precision() -> None:
    result, tried = drive(SearchConfig(start_rate=100, max_rate=10_000, precision=0.05),
                          boundary(300))
    assert tried[:3] == [100, 200, 400]
    assert tried[3] == 300  # the midpoint of [200, 400)
    assert result.limited_by is LimitedBy.TARGET
    assert result.passed is not None and result.failed is not None
    assert result.passed <= 300 < result.failed
    assert (result.failed - result.passed) / result.passed <= 0.05
    assert result.rate == result.passed


def test_a_first_failure_halves_until_a_pass() -> None:
    result, tried = drive(SearchConfig(start_rate=800, max_rate=10_000, precision=0.05),
                          boundary(150))
    assert tried[:4] == [800, 400, 200, 100]
    assert result.passed is not None and result.passed <= 150 < result.failed


def test_failing_down_to_the_floor_finds_nothing() -> None:
    result, tried = drive(SearchConfig(start_rate=10, max_rate=100, precision=0.05,
                                       floor_rate=1), lambda rate: StepVerdict.FAIL)
    assert tried == [10, 5, 2.5, 1.25]
    assert result == SearchResult(None, None, 1.25, LimitedBy.TARGET)


def test_the_max_rate_cap_ends_a_search_that_keeps_passing() -> None:
    result, tried = drive(SearchConfig(start_rate=100, max_rate=500), boundary(1e9))
    assert tried == [100, 200, 400, 500]
    assert result == SearchResult(500, 500, None, LimitedBy.CAP)


def test_an_unknown_step_ends_the_search_and_is_never_a_pass() -> None:
    def oracle(rate: float) -> StepVerdict:
        return StepVerdict.PASS if rate < 350 else StepVerdict.UNKNOWN

    result, tried = drive(SearchConfig(start_rate=100, max_rate=10_000), oracle)
    assert tried == [100, 200, 400]
    assert result == SearchResult(200, 200, None, LimitedBy.GENERATOR)


def test_a_capped_step_ends_it_as_cap() -> None:
    search = Search(SearchConfig(start_rate=100, max_rate=10_000))
    search.record(search.next_rate() or 0, StepVerdict.PASS)
    search.record(search.next_rate() or 0, StepVerdict.UNKNOWN, cap=True)
    assert search.next_rate() is None
    assert search.result() == SearchResult(100, 100, None, LimitedBy.CAP)


def test_max_steps_bounds_it() -> None:
    result, tried = drive(SearchConfig(start_rate=1, max_rate=1e9, precision=1e-6, max_steps=5),
                          boundary(1e6))
    assert len(tried) == 5
    assert result.limited_by is LimitedBy.STEPS
    assert result.passed == 16


@pytest.mark.parametrize("kwargs", [dict(start_rate=0, max_rate=10),
                                    dict(start_rate=20, max_rate=10),
                                    dict(start_rate=1, max_rate=10, precision=0),
                                    dict(start_rate=1, max_rate=10, max_steps=0)])
def test_nonsense_configs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SearchConfig(**kwargs)  # type: ignore[arg-type]


rates = st.floats(min_value=0.5, max_value=5_000, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(capacity=rates, start=rates, precision=st.floats(min_value=0.01, max_value=0.5),
       inclusive=st.booleans())
def test_any_monotone_boundary_is_bracketed_within_precision(
        capacity: float, start: float, precision: float, inclusive: bool) -> None:
    def oracle(rate: float) -> StepVerdict:
        passes = rate <= capacity if inclusive else rate < capacity
        return StepVerdict.PASS if passes else StepVerdict.FAIL

    config = SearchConfig(start_rate=start, max_rate=10_000, precision=precision, max_steps=64)
    result, tried = drive(config, oracle)
    assert len(tried) <= 64
    if result.limited_by is LimitedBy.TARGET and result.passed is None:
        assert result.failed is not None and result.failed / 2 < config.floor_rate
        return
    assert result.limited_by is LimitedBy.TARGET
    assert result.passed is not None and result.failed is not None
    assert oracle(result.passed) is StepVerdict.PASS and oracle(result.failed) is StepVerdict.FAIL
    assert result.passed <= capacity <= result.failed
    assert (result.failed - result.passed) / result.passed <= precision


@settings(max_examples=300, deadline=None)
@given(capacity=rates, generator=rates, start=rates, max_steps=st.integers(1, 40))
def test_unknown_never_becomes_a_pass(capacity: float, generator: float, start: float,
                                      max_steps: int) -> None:
    """Past the generator's limit every step is unknown: no reported pass is
    ever at or above it, and an unknown step ends the search."""
    def oracle(rate: float) -> StepVerdict:
        if rate >= generator:
            return StepVerdict.UNKNOWN
        return StepVerdict.PASS if rate <= capacity else StepVerdict.FAIL

    result, tried = drive(SearchConfig(start_rate=start, max_rate=10_000, max_steps=max_steps),
                          oracle)
    verdicts = [oracle(rate) for rate in tried]
    assert StepVerdict.UNKNOWN not in verdicts[:-1]
    if verdicts and verdicts[-1] is StepVerdict.UNKNOWN:
        assert result.limited_by is LimitedBy.GENERATOR
    if result.rate is not None:
        assert result.rate < generator
        assert oracle(result.rate) is StepVerdict.PASS
