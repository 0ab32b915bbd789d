"""The regression verdict on simulated runs with shared-runner noise, and its
statistics (the t quantile, the U distribution) against published tables.

The noise model is docs/regression-statistics.md's: a run's value varies from
run to run by a lognormal factor (2.5% CV); its windows scatter around it
(12% CV before centring) as an AR(1) series with rho 0.5, centred so that the
windows' geometric mean is the run's value (the run's aggregate is made of
its windows). Every simulation has a fixed seed.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import FrozenInstanceError

import pytest

from loadaction.metrics.comparison import (
    Comparison,
    RegressionVerdict,
    RunSample,
    compare,
    mann_whitney_p,
    smallest_p,
    t_cdf,
    t_quantile,
)

V = RegressionVerdict

SIGMA_RUN = 0.025
SIGMA_WINDOW = 0.12
RHO = 0.5
PR_WINDOWS = 5  # ticket-purchase at `pr`: ~27 s in 5 s windows
SMOKE_WINDOWS = 3


def simulate_run(rng: random.Random, level: float, windows: int, *, sigma_run: float = SIGMA_RUN,
                 sigma_window: float = SIGMA_WINDOW, rho: float = RHO) -> RunSample:
    value = level * math.exp(rng.gauss(0, sigma_run))
    noise = [rng.gauss(0, sigma_window)]
    for _ in range(windows - 1):
        noise.append(rho * noise[-1] + math.sqrt(1 - rho * rho) * rng.gauss(0, sigma_window))
    centre = sum(noise) / len(noise)
    return RunSample(value, tuple(value * math.exp(e - centre) for e in noise))


def verdicts(seed: int, trials: int, factor: float, *, windows: int = PR_WINDOWS, runs: int = 5,
             level: float = 12.0, floor: float = 0.10, higher_is_worse: bool = True,
             **noise: float) -> Counter[RegressionVerdict]:
    """Verdicts of `trials` comparisons of a run at level*factor against
    `runs` baseline runs at level."""
    rng = random.Random(seed)
    out: Counter[RegressionVerdict] = Counter()
    for _ in range(trials):
        baseline = [simulate_run(rng, level, windows, **noise) for _ in range(runs)]
        current = simulate_run(rng, level * factor, windows, **noise)
        out[compare(current, baseline, floor=floor, higher_is_worse=higher_is_worse).verdict] += 1
    return out


# ------------------------------------------------------------ simulations


@pytest.mark.parametrize("windows", [PR_WINDOWS, 12, 60])
def test_aa_flags_at_most_one_percent(windows: int) -> None:
    got = verdicts(1000 + windows, 500, 1.0, windows=windows)
    assert got[V.REGRESSED] <= 5, got
    assert got[V.IMPROVED] <= 5, got
    assert got[V.INSUFFICIENT] == 0


@pytest.mark.parametrize("windows", [PR_WINDOWS, 12, 60])
def test_a_true_25_percent_regression_is_flagged(windows: int) -> None:
    got = verdicts(2000 + windows, 200, 1.25, windows=windows)
    assert got[V.REGRESSED] >= 190, got


@pytest.mark.parametrize("windows", [PR_WINDOWS, 12, 60])
def test_a_3_percent_change_is_never_flagged_against_a_10_percent_floor(windows: int) -> None:
    got = verdicts(3000 + windows, 500, 1.03, windows=windows)
    assert got[V.REGRESSED] == 0, got


def test_smoke_few_windows_still_catch_a_gross_regression() -> None:
    # +150 ms on a ~5 ms p95, 3 windows a run, 3 baseline runs: conservative, not blind.
    rng = random.Random(4000)
    for _ in range(100):
        baseline = [simulate_run(rng, 5.0, SMOKE_WINDOWS) for _ in range(3)]
        current = simulate_run(rng, 155.0, SMOKE_WINDOWS)
        result = compare(current, baseline, floor=0.10)
        assert result.verdict is V.REGRESSED, result.reason
        assert result.p_value is not None and result.p_value < 0.05


def test_smoke_aa_is_quiet() -> None:
    got = verdicts(4100, 500, 1.0, windows=SMOKE_WINDOWS, runs=3, level=5.0)
    assert got[V.REGRESSED] <= 5, got


def test_improvement_is_symmetric() -> None:
    got = verdicts(5000, 200, 0.75)
    assert got[V.IMPROVED] >= 190, got
    assert got[V.REGRESSED] == 0


def test_lower_is_worse_mirrors_higher_is_worse() -> None:
    # A throughput that falls by 25% is the regression; one that rises, the improvement.
    fell = verdicts(5100, 200, 0.75, higher_is_worse=False)
    rose = verdicts(5200, 200, 1.25, higher_is_worse=False)
    assert fell[V.REGRESSED] >= 190, fell
    assert rose[V.IMPROVED] >= 190, rose
    assert fell[V.IMPROVED] == rose[V.REGRESSED] == 0


def test_aa_stays_quiet_when_the_runners_are_noisier_than_assumed() -> None:
    # The prediction bound is estimated from the baseline runs' own spread, so
    # false alarms stay rare even at twice the assumed run-to-run noise.
    got = verdicts(6000, 500, 1.0, sigma_run=0.05, sigma_window=0.15)
    assert got[V.REGRESSED] <= 5, got


def test_windows_alone_would_flag_healthy_runs() -> None:
    # Why the run-level check exists: windows share their run's offset, so a
    # window test alone calls many A/A runs worse once runs are long (60
    # windows: a 5-minute run), nearly three times its nominal 5%.
    rng = random.Random(7000)
    flagged = 0
    for _ in range(200):
        baseline = [simulate_run(rng, 12.0, 60) for _ in range(5)]
        current = simulate_run(rng, 12.0, 60)
        pooled = [w for run in baseline for w in run.windows]
        flagged += mann_whitney_p(current.windows, pooled) < 0.05
    assert flagged > 20


def test_one_stall_that_moves_the_run_p95_is_not_a_regression() -> None:
    # One window of five at 4x drags the whole run's p95 up by far more than
    # the floor; the other four windows are healthy, so the windows disagree.
    rng = random.Random(8000)
    baseline = [simulate_run(rng, 12.0, PR_WINDOWS) for _ in range(5)]
    healthy = simulate_run(rng, 12.0, PR_WINDOWS)
    windows = (*healthy.windows[:4], healthy.windows[4] * 4)
    result = compare(RunSample(18.0, windows), baseline, floor=0.10)
    assert result.verdict is V.NO_EVIDENCE
    assert "windows do not agree" in result.reason


# ------------------------------------------------------- specific verdicts

BASELINE = [RunSample(12.0, (11.5, 12.2, 12.4, 11.9, 12.0)),
            RunSample(12.4, (12.1, 12.6, 12.8, 12.3, 12.2)),
            RunSample(11.8, (11.2, 12.1, 11.9, 12.0, 11.7)),
            RunSample(12.2, (12.0, 12.5, 12.1, 12.4, 12.0)),
            RunSample(12.1, (11.8, 12.3, 12.0, 12.2, 12.2))]


def test_a_clear_regression_says_why() -> None:
    result = compare(RunSample(16.0, (15.5, 16.2, 16.4, 15.9, 16.0)), BASELINE, floor=0.10)
    assert result.verdict is V.REGRESSED
    assert result.baseline_value == 12.1
    assert result.change == pytest.approx(16.0 / 12.1 - 1)
    assert result.baseline_runs == 5 and result.windows == 5 and result.baseline_windows == 25
    assert result.p_value == pytest.approx(1 / math.comb(30, 5))
    assert result.interval is not None
    low, high = result.interval
    assert low < 12.1 < high < 16.0 / 1.1
    assert result.reason.startswith("+32% (12.1 to 16)")
    assert "10% floor" in result.reason and "windows agree" in result.reason


def test_within_the_floor_is_no_evidence_however_significant() -> None:
    result = compare(RunSample(12.9, (12.8, 12.9, 13.0, 12.9, 12.95)), BASELINE, floor=0.10)
    assert result.verdict is V.NO_EVIDENCE
    assert result.p_value is not None and result.p_value < 0.001
    assert result.reason.startswith("+6.6% (12.1 to 12.9) is within the 10% floor")


def test_past_the_floor_but_within_run_to_run_noise_is_no_evidence() -> None:
    noisy = [RunSample(v, (v, v * 1.01, v * 0.99)) for v in (10.0, 12.0, 14.0, 11.0, 13.0)]
    result = compare(RunSample(14.0, (14.0, 14.1, 13.9)), noisy, floor=0.10)
    assert result.verdict is V.NO_EVIDENCE
    assert "run-to-run noise can explain it" in result.reason


def test_without_windows_on_either_side_the_run_values_decide() -> None:
    runs = [RunSample(r.value) for r in BASELINE]
    result = compare(RunSample(16.0), runs, floor=0.10)
    assert result.verdict is V.REGRESSED
    assert result.p_value is None and result.windows == result.baseline_windows == 0
    assert "judged on the run values alone" in result.reason
    within = compare(RunSample(12.5), runs, floor=0.10)
    assert within.verdict is V.NO_EVIDENCE
    assert "judged on the run values alone" in within.reason


@pytest.mark.parametrize(("current", "baseline", "why"), [
    (RunSample(16.0, (16.0,) * 5), BASELINE[:2], "2 baseline runs with a value; 3 needed"),
    (RunSample(None, (16.0,) * 5), BASELINE, "the current run has no value"),
    (RunSample(math.nan, (16.0,) * 5), BASELINE, "the current run has no value"),
    (RunSample(16.0, (16.0,)), BASELINE, "the current run has 1 window with data; 3 needed"),
    (RunSample(16.0, (16.0,) * 5), [RunSample(12.0, (12.0,)), RunSample(12.1), RunSample(12.2)],
     "the baseline runs have 1 window with data; 3 needed"),
    (RunSample(16.0, (16.0,) * 5), [RunSample(r.value) for r in BASELINE],
     "the baseline runs have 0 windows with data; 3 needed"),
    (RunSample(16.0, (16.0, 16.1, 16.2)), [RunSample(12.0, (12.0,)), RunSample(12.1, (12.1,)),
                                           RunSample(12.2, (12.2,))],
     "3 windows against 3 cannot reach p<0.05: the smallest possible p is 0.05"),
])
def test_insufficient_data(current: RunSample, baseline: list[RunSample], why: str) -> None:
    result = compare(current, baseline, floor=0.10)
    assert result.verdict is V.INSUFFICIENT
    assert result.reason.startswith(why), result.reason
    assert result.p_value is None and result.interval is None


def test_baseline_runs_without_a_value_do_not_count() -> None:
    runs = [*BASELINE[:2], RunSample(None, (12.0, 12.0, 12.0)), RunSample(math.inf)]
    result = compare(RunSample(16.0, (16.0,) * 5), runs, floor=0.10)
    assert result.verdict is V.INSUFFICIENT and result.baseline_runs == 2
    assert result.baseline_windows == 10


def test_an_error_rate_near_zero_needs_an_absolute_floor() -> None:
    rates = [RunSample(v, (v, v, v)) for v in (0.0, 0.0, 0.0, 0.001, 0.0)]
    relative = compare(RunSample(0.02, (0.02, 0.02, 0.02)), rates, floor=0.10)
    assert relative.verdict is V.INSUFFICIENT and "absolute floor" in relative.reason
    assert relative.change is None
    absolute = compare(RunSample(0.02, (0.018, 0.02, 0.022)), rates, floor=0.10, floor_abs=0.005)
    assert absolute.verdict is V.REGRESSED, absolute.reason
    assert absolute.reason.startswith("+0.02 (0 to 0.02)")
    assert "floor of 0.005" in absolute.reason
    small = compare(RunSample(0.004, (0.004, 0.004, 0.004)), rates, floor=0.10, floor_abs=0.005)
    assert small.verdict is V.NO_EVIDENCE and "within the floor of 0.005" in small.reason


def test_comparison_is_frozen() -> None:
    result = compare(RunSample(12.0), [RunSample(12.0)] * 3, floor=0.1)
    assert isinstance(result, Comparison)
    with pytest.raises(FrozenInstanceError):
        result.verdict = V.REGRESSED  # type: ignore[misc]


@pytest.mark.parametrize("kwargs", [
    {"floor": -0.1}, {"floor": math.nan}, {"floor": 0.1, "alpha": 0.0},
    {"floor": 0.1, "alpha": 1.0}, {"floor": 0.1, "min_runs": 1},
    {"floor": 0.1, "min_windows": 0}, {"floor": 0.1, "floor_abs": -1.0},
])
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        compare(RunSample(1.0), BASELINE, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------- published tables

# Student's t critical values, NIST/SEMATECH e-Handbook of Statistical
# Methods, section 1.3.6.7.2 "Critical Values of the Student's t
# Distribution": upper-tail probability, degrees of freedom, t.
T_TABLE = [
    (0.05, 4, 2.132), (0.025, 10, 2.228), (0.01, 2, 6.965), (0.05, 1, 6.314),
    (0.025, 1, 12.706), (0.05, 2, 2.920), (0.10, 4, 1.533), (0.025, 4, 2.776),
    (0.005, 4, 4.604), (0.001, 4, 7.173), (0.05, 5, 2.015), (0.005, 5, 4.032),
    (0.10, 9, 1.383), (0.05, 9, 1.833), (0.001, 3, 10.215), (0.05, 30, 1.697),
    (0.01, 30, 2.457), (0.05, 100, 1.660), (0.001, 100, 3.174),
]


@pytest.mark.parametrize(("tail", "df", "table"), T_TABLE)
def test_t_quantile_matches_the_published_table(tail: float, df: int, table: float) -> None:
    t = t_quantile(1 - tail, df)
    assert round(t, 3) == table
    assert t_cdf(t, df) == pytest.approx(1 - tail, abs=1e-12)
    assert t_quantile(tail, df) == pytest.approx(-t)


def test_t_quantile_matches_closed_forms() -> None:
    for p in (0.6, 0.9, 0.95, 0.99, 0.999):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
        a = 4 * p * (1 - p)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) * math.sqrt(2 / a), rel=1e-10)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)  # the normal's
    assert t_quantile(0.5, 3) == 0.0


def _with_u(m: int, n: int, u: int) -> tuple[list[float], list[float]]:
    """Samples of sizes m, n without ties where x beats exactly u of the
    (x, y) pairs: y = 0..n-1, each x just above the y values it beats."""
    counts = []
    for _ in range(m):
        counts.append(min(n, u))
        u -= counts[-1]
    assert u == 0
    return [c - 0.5 + i / (10 * m) for i, c in enumerate(counts)], [float(j) for j in range(n)]


def _p_u_at_most(m: int, n: int, u: int) -> float:
    x, y = _with_u(m, n, u)
    return mann_whitney_p(y, x)  # P(U_y >= mn - u) = P(U_x <= u)


# P(U <= u) from Mann & Whitney (1947), "On a test of whether one of two
# random variables is stochastically larger than the other", Ann. Math.
# Statist. 18(1), Table I (n = 3..8).
MW_1947 = [
    (3, 3, 0, 0.050), (3, 3, 1, 0.100), (3, 3, 2, 0.200), (4, 4, 0, 0.014),
    (4, 4, 2, 0.057), (4, 4, 3, 0.100), (5, 5, 2, 0.016), (5, 5, 4, 0.048),
    (5, 5, 5, 0.075), (6, 6, 7, 0.047), (8, 8, 15, 0.041), (3, 8, 4, 0.067),
]


@pytest.mark.parametrize(("m", "n", "u", "table"), MW_1947)
def test_exact_u_probabilities_match_mann_and_whitney(m: int, n: int, u: int, table: float) -> None:
    assert round(_p_u_at_most(m, n, u), 3) == table


# Critical values of U from the standard lower-tail tables of the
# Mann-Whitney test (reject when U <= U*; tables that list the upper value
# give m*n - U*): one-tailed alpha 0.05, and two-tailed 0.05 (0.025 a tail).
U_CRITICAL = [
    (0.05, 4, 4, 1), (0.05, 5, 5, 4), (0.05, 6, 6, 7), (0.05, 7, 7, 11),
    (0.05, 8, 8, 15), (0.05, 10, 10, 27), (0.05, 20, 20, 138), (0.05, 4, 8, 5),
    (0.025, 5, 5, 2), (0.025, 8, 8, 13), (0.025, 10, 10, 23), (0.025, 20, 20, 127),
]


@pytest.mark.parametrize(("alpha", "m", "n", "critical"), U_CRITICAL)
def test_u_critical_values_match_the_table(alpha: float, m: int, n: int, critical: int) -> None:
    assert _p_u_at_most(m, n, critical) <= alpha < _p_u_at_most(m, n, critical + 1)


def test_normal_approximation_agrees_with_the_exact_distribution() -> None:
    for m, n in ((20, 20), (12, 60), (30, 40)):
        for u in range(m * n // 2, m * n + 1, max(1, m * n // 40)):
            x, y = _with_u(m, n, u)
            exact, normal = mann_whitney_p(x, y, "exact"), mann_whitney_p(x, y, "normal")
            assert normal == pytest.approx(exact, abs=0.004), (m, n, u)


def test_ties_use_midranks_exactly() -> None:
    # x = (2, 2), y = (1, 2): midranks x = 3, 3; of the six splits of
    # ranks (1, 3, 3, 3), three reach a rank sum of 6.
    assert mann_whitney_p([2, 2], [1, 2]) == pytest.approx(3 / 6)
    assert mann_whitney_p([5, 5, 5], [5, 5, 5]) == 1.0
    assert mann_whitney_p([5, 5, 5], [5, 5, 5], "normal") == 1.0
    rng = random.Random(9)
    x = [rng.randint(0, 4) for _ in range(15)]
    y = [rng.randint(0, 3) for _ in range(15)]
    assert mann_whitney_p(x, y, "normal") == pytest.approx(mann_whitney_p(x, y, "exact"), abs=0.01)


def test_smallest_p() -> None:
    assert smallest_p(3, 3) == 0.05
    assert smallest_p(3, 9) == pytest.approx(1 / 220)
    x, y = _with_u(5, 25, 125)
    assert mann_whitney_p(x, y) == pytest.approx(smallest_p(5, 25))
