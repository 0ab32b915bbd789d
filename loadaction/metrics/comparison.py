"""Is this run worse than the base branch's runs? A regression verdict that a
team can gate on.

Requests are never the sample: the requests of one run share its runner, its
caches and its noisy neighbours, so a per-request test calls every run on a
different machine a regression. The units here are the run (its whole-run
aggregate, e.g. the p95 in ms) and the time window within a run (the same
aggregate over e.g. 5 s). Three checks must all point the same way:

1. the practical floor: the change from the baseline's median exceeds the
   plan's floor (10% means "may not get worse by more than 10%");
2. the run level: the current value lies beyond the baseline runs' one-sided
   t prediction bound for a new run *moved by the floor*. That is a test of
   "worse than the floor" (not merely "worse than 0") against run-to-run
   noise, the noise that dominates on shared runners; the baseline runs are
   the only sample of that noise there is;
3. the windows: a one-sided Mann-Whitney U test of the current run's windows
   against the baseline runs' pooled windows. Windows of one run share its
   offset, so this test alone flags healthy runs; it is here to insist that
   the change is spread over the run, not one stall that moved the run's p95.

docs/regression-statistics.md gives the reasoning, the assumptions and the
simulations. Pure stdlib: the t quantile and the U distribution are computed
here and tested against published tables.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from loadaction.metrics.thresholds import format_value


class RegressionVerdict(StrEnum):
    REGRESSED = "regressed"
    NO_EVIDENCE = "no evidence"
    IMPROVED = "improved"
    INSUFFICIENT = "insufficient data"


@dataclass(frozen=True, slots=True)
class RunSample:
    """One run's aggregate, whole and per time window (windows with data only)."""

    value: float | None
    windows: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Comparison:
    verdict: RegressionVerdict
    baseline_value: float | None  # median of the baseline runs' values
    value: float | None  # the current run's value
    change: float | None  # (value - baseline_value) / baseline_value
    p_value: float | None  # the window test's, in the direction of the change
    interval: tuple[float, float] | None  # one-sided (1 - alpha) prediction bounds, both sides
    baseline_runs: int
    windows: int
    baseline_windows: int
    reason: str


# ----------------------------------------------------------- Student's t


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), by the continued fraction of Numerical Recipes (6.4), which
    converges fast on the side of the mean where it is evaluated."""
    if not (a > 0 and b > 0):
        raise ValueError("regularized_beta needs a > 0 and b > 0")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Modified Lentz evaluation of the incomplete beta continued fraction."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1.0) < 1e-15:
            return h
    return h  # not reached for the a, b used here (df/2, 1/2)


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom."""
    if df <= 0:
        raise ValueError("t_sf needs df > 0")
    tail = 0.5 * regularized_beta(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_cdf(t: float, df: float) -> float:
    return 1.0 - t_sf(t, df)


@lru_cache(maxsize=512)
def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p: bisection on the upper tail, which keeps
    precision for p near 1 (the quantiles a one-sided bound uses). Cached:
    a gate asks for the same few (p, df) over and over."""
    if not 0.0 < p < 1.0:
        raise ValueError("t_quantile needs 0 < p < 1")
    if df <= 0:
        raise ValueError("t_quantile needs df > 0")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    tail = 1.0 - p
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > tail:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_sf(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return (lo + hi) / 2


# ------------------------------------------------------- Mann-Whitney U

_EXACT_MAX_MN = 2500  # exact U distribution without ties up to m*n of this
_EXACT_TIED_MAX_COST = 200_000  # exact tied distribution while N*k*(N*k) stays under this


def mann_whitney_p(x: Sequence[float], y: Sequence[float], method: str = "auto") -> float:
    """One-sided p-value of "x tends to be larger than y": P(U >= U_x) under H0.

    `auto` is exact for small samples (the U distribution without ties, the
    permutation distribution of midranks with ties) and otherwise the normal
    approximation with the tie-corrected variance and a continuity correction.
    """
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        raise ValueError("mann_whitney_p needs two non-empty samples")
    if method not in ("auto", "exact", "normal"):
        raise ValueError(f"unknown method {method!r}")
    doubled, ties = _doubled_midranks([*x, *y])
    big_n = m + n
    doubled_r = sum(doubled[:m])  # 2 * rank sum of x, an integer
    k = min(m, n)
    if method == "exact" or (method == "auto" and (
            (not ties and m * n <= _EXACT_MAX_MN)
            or (ties and big_n * k * big_n * k <= _EXACT_TIED_MAX_COST))):
        if not ties:
            u = (doubled_r - m * (m + 1)) // 2
            tails, total = _u_tails(m, n)
            return tails[u] / total
        return _tied_exact_p(doubled, m, doubled_r)
    u_stat = doubled_r / 2 - m * (m + 1) / 2
    tie_term = sum(t ** 3 - t for t in ties)
    var = m * n / 12 * ((big_n + 1) - tie_term / (big_n * (big_n - 1)))
    if var <= 0:  # every value tied: nothing separates the samples
        return 1.0
    z = (u_stat - m * n / 2 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def smallest_p(m: int, n: int) -> float:
    """The smallest one-sided p the U test can give for these sizes (no ties):
    1 / C(m+n, m). At or above alpha, the window test could never pass."""
    return 1 / math.comb(m + n, m)


def _doubled_midranks(values: list[float]) -> tuple[list[int], list[int]]:
    """2 * midrank of each value (integers), and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    doubled = [0] * len(values)
    ties: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for idx in order[i:j + 1]:
            doubled[idx] = i + j + 2  # ranks i+1..j+1, doubled mean
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    return doubled, ties


@lru_cache(maxsize=256)
def _u_tails(m: int, n: int) -> tuple[tuple[int, ...], int]:
    """P(U >= u) numerators for u = 0..mn, and C(m+n, m).

    The counts of U are the coefficients of the Gaussian binomial [m+n, m]_q =
    prod_{i=1..k} (1 - q^(N-k+i)) / (1 - q^i); truncating at degree mn is
    exact because both steps only read lower coefficients."""
    k, big_n, top = min(m, n), m + n, m * n
    c = [0] * (top + 1)
    c[0] = 1
    for i in range(1, k + 1):
        a = big_n - k + i
        for j in range(top, a - 1, -1):
            c[j] -= c[j - a]
        for j in range(i, top + 1):
            c[j] += c[j - i]
    tails = [0] * (top + 2)
    for u in range(top, -1, -1):
        tails[u] = tails[u + 1] + c[u]
    return tuple(tails), math.comb(big_n, m)


def _tied_exact_p(doubled: list[int], m: int, observed: int) -> float:
    """P(sum of m doubled midranks >= observed) over all C(N, m) subsets."""
    counts: list[dict[int, int]] = [{0: 1}] + [{} for _ in range(m)]
    for r in doubled:
        for size in range(m, 0, -1):
            target = counts[size]
            for s, c in counts[size - 1].items():
                target[s + r] = target.get(s + r, 0) + c
    hits = sum(c for s, c in counts[m].items() if s >= observed)
    return hits / math.comb(len(doubled), m)


# ---------------------------------------------------------------- verdict


def compare(current: RunSample, baseline: Sequence[RunSample], *, floor: float,
            higher_is_worse: bool = True, alpha: float = 0.05, min_runs: int = 3,
            min_windows: int = 3, floor_abs: float | None = None) -> Comparison:
    """Judge the current run against the baseline runs.

    `floor` is relative (0.10: "may not get worse by more than 10%"). A
    `floor_abs`, in the metric's unit, replaces it: for values near 0 such as
    error rates, where a relative change means nothing. `regressed` needs all
    three checks of the module docstring in the worse direction, `improved`
    the same in the better one. When neither side has windows (a metric with
    no per-window series) the run-level check and the floor decide alone.
    """
    if not (math.isfinite(floor) and floor >= 0):
        raise ValueError("floor must be a finite fraction >= 0")
    if floor_abs is not None and not (math.isfinite(floor_abs) and floor_abs >= 0):
        raise ValueError("floor_abs must be finite and >= 0")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if min_runs < 2 or min_windows < 1:
        raise ValueError("min_runs must be >= 2 and min_windows >= 1")

    value = _finite(current.value)
    runs = [r for r in baseline if _finite(r.value) is not None]
    values = [float(r.value) for r in runs]  # type: ignore[arg-type]
    cur_w = [float(w) for w in current.windows if math.isfinite(w)]
    base_w = [float(w) for r in runs for w in r.windows if math.isfinite(w)]
    base_value = statistics.median(values) if values else None
    change = (None if value is None or not base_value
              else (value - base_value) / base_value)

    def verdict(v: RegressionVerdict, reason: str, p: float | None = None,
                interval: tuple[float, float] | None = None) -> Comparison:
        return Comparison(v, base_value, value, change, p, interval, len(values),
                          len(cur_w), len(base_w), reason)

    def insufficient(reason: str) -> Comparison:
        return verdict(RegressionVerdict.INSUFFICIENT, reason)

    if value is None:
        return insufficient("the current run has no value for this metric")
    if len(values) < min_runs:
        return insufficient(f"{_count(len(values), 'baseline run')} with a value; "
                            f"{min_runs} needed")
    if floor_abs is None and base_value == 0:
        return insufficient("the baseline's value is 0, so a relative change means nothing; "
                            "an absolute floor can judge it")
    use_windows = bool(cur_w or base_w)
    if use_windows:
        if len(cur_w) < min_windows:
            return insufficient(f"the current run has {_count(len(cur_w), 'window')} with data; "
                                f"{min_windows} needed")
        if len(base_w) < min_windows:
            return insufficient(f"the baseline runs have {_count(len(base_w), 'window')} with "
                                f"data; {min_windows} needed")
        if smallest_p(len(cur_w), len(base_w)) >= alpha:
            return insufficient(f"{len(cur_w)} windows against {len(base_w)} cannot reach "
                                f"p<{alpha:g}: the smallest possible p is "
                                f"{_p(smallest_p(len(cur_w), len(base_w)))}")

    assert base_value is not None
    # Latencies vary by factors, not by milliseconds: on the log scale the
    # bound is asymmetric like the data. Values that reach 0 stay linear.
    log = floor_abs is None and value > 0 and all(v > 0 for v in values)
    to: Callable[[float], float] = math.log if log else _same
    back: Callable[[float], float] = math.exp if log else _same
    scaled = [to(v) for v in values]
    centre, spread = statistics.fmean(scaled), statistics.stdev(scaled)
    n = len(values)
    half = t_quantile(1 - alpha, n - 1) * spread * math.sqrt(1 + 1 / n)
    low, high = back(centre - half), back(centre + half)
    if log:
        up_bound = high * (1 + floor)
        down_bound = low * (1 - floor) if floor < 1 else -math.inf
    else:
        margin = floor_abs if floor_abs is not None else floor * abs(base_value)
        up_bound, down_bound = high + margin, low - margin

    if floor_abs is None:
        assert change is not None
        beyond_up, beyond_down = change > floor, change < -floor
    else:
        beyond_up = value - base_value > floor_abs
        beyond_down = base_value - value > floor_abs

    up = value >= base_value
    p = None
    if use_windows:  # one-sided, in the direction the run moved
        p = mann_whitney_p(cur_w, base_w) if up else mann_whitney_p(base_w, cur_w)
    interval = (low, high)

    facts = _Facts(n=n, alpha=alpha, value=value, base_value=base_value, change=change,
                   floor=floor, floor_abs=floor_abs, windows=len(cur_w),
                   baseline_windows=len(base_w))
    beyond, bound, past = ((beyond_up, up_bound, value > up_bound) if up
                           else (beyond_down, down_bound, value < down_bound))
    agree = p is None or p < alpha
    reason = facts.reason(up, beyond, past, bound, p)
    if beyond and past and agree:
        worse = up == higher_is_worse
        return verdict(RegressionVerdict.REGRESSED if worse else RegressionVerdict.IMPROVED,
                       reason, p, interval)
    return verdict(RegressionVerdict.NO_EVIDENCE, reason, p, interval)


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the reason sentence reads, so each verdict says why in one line."""

    n: int
    alpha: float
    value: float
    base_value: float
    change: float | None
    floor: float
    floor_abs: float | None
    windows: int
    baseline_windows: int

    def reason(self, up: bool, beyond: bool, past: bool, bound: float, p: float | None) -> str:
        if self.floor_abs is None:
            moved = _pct(self.change or 0.0)
            floor = f"the {self.floor * 100:g}% floor"
        else:
            moved = f"{'+' if up else '-'}{format_value(abs(self.value - self.base_value))}"
            floor = f"the floor of {format_value(self.floor_abs)}"
        moved += f" ({format_value(self.base_value)} to {format_value(self.value)})"
        no_windows = "; no per-window series on either side, so judged on the run values alone"
        if not beyond:
            return f"{moved} is within {floor}" + (no_windows if p is None else "")
        side = "above" if up else "below"
        where = (f"the {self.n} baseline runs' {(1 - self.alpha) * 100:g}% prediction bound "
                 f"{'plus' if up else 'minus'} {floor} ({format_value(bound)})")
        if not past:
            return (f"{moved} is past {floor} but not {side} {where}: "
                    f"run-to-run noise can explain it" + (no_windows if p is None else ""))
        if p is None:
            return f"{moved} is {side} {where}" + no_windows
        windows = f"p={_p(p)} over {self.windows} windows against {self.baseline_windows}"
        if p < self.alpha:
            return f"{moved} is {side} {where}, and the windows agree ({windows})"
        return (f"{moved} is {side} {where}, but the windows do not agree ({windows}): "
                f"the change is not spread over the run")


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _same(x: float) -> float:
    return x


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%" if abs(x) < 0.1 else f"{x * 100:+.0f}%"


def _p(p: float) -> str:
    # Three significant digits: 0.0496 must not print as 0.05 next to alpha.
    return f"{p:.3g}"
