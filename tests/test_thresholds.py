from __future__ import annotations

import math
import operator
from dataclasses import FrozenInstanceError, dataclass

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from loadaction.metrics.thresholds import (
    VALID_AGGREGATIONS,
    ThresholdExpr,
    Verdict,
    aggregate,
    evaluate,
    format_value,
    parse_selector,
    parse_threshold,
)

# ------------------------------------------------------------ parse_threshold


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p(95)<500", ("p", 95.0, "<", 500.0)),
        ("p( 95 ) < 500", ("p", 95.0, "<", 500.0)),
        ("p (95)<500", ("p", 95.0, "<", 500.0)),
        ("  avg <= 200  ", ("avg", None, "<=", 200.0)),
        ("min>1", ("min", None, ">", 1.0)),
        ("med>=2.5", ("med", None, ">=", 2.5)),
        ("max<3000", ("max", None, "<", 3000.0)),
        ("rate<0.01", ("rate", None, "<", 0.01)),
        ("rate < .5", ("rate", None, "<", 0.5)),
        ("count==1", ("count", None, "==", 1.0)),
        ("count===1", ("count", None, "==", 1.0)),
        ("count!=0", ("count", None, "!=", 0.0)),
        ("value>=-3", ("value", None, ">=", -3.0)),
        ("value>+3", ("value", None, ">", 3.0)),
        ("p(99.9)<=1e3", ("p", 99.9, "<=", 1000.0)),
        ("p(100)<1E-3", ("p", 100.0, "<", 0.001)),
        ("p(0.1)<2.", ("p", 0.1, "<", 2.0)),
        ("p(1e1)\t<\n5", ("p", 10.0, "<", 5.0)),
    ],
)
def test_parse_valid(text: str, expected: tuple[object, ...]) -> None:
    expr = parse_threshold(text)
    assert (expr.aggregation, expr.percentile, expr.op, expr.value) == expected
    assert expr.text == text.strip()


def test_parse_matches_documented_example() -> None:
    assert parse_threshold("p(95)<500") == ThresholdExpr("p", 95.0, "<", 500.0, "p(95)<500")


AGG = "expected avg, min, med, max, p(N), rate, count, value, last or slope"
OPS = "expected an operator (<, <=, >, >=, ==, !=)"
PN = "expected p(N) with N a number, e.g. p(95)"
PCT = "percentile must be between 0 and 100"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid threshold '': empty expression"),
        ("   ", "invalid threshold '': empty expression"),
        ("p95<500", f"invalid threshold 'p95<500': {AGG}"),
        ("P(95)<500", f"invalid threshold 'P(95)<500': {AGG}"),
        ("average<5", f"invalid threshold 'average<5': {AGG}"),
        ("maxx<5", f"invalid threshold 'maxx<5': {AGG}"),
        ("<500", f"invalid threshold '<500': {AGG}"),
        ("95<500", f"invalid threshold '95<500': {AGG}"),
        ("p<500", f"invalid threshold 'p<500': {PN}"),
        ("p()<500", f"invalid threshold 'p()<500': {PN}"),
        ("p(abc)<500", f"invalid threshold 'p(abc)<500': {PN}"),
        ("p(95<500", f"invalid threshold 'p(95<500': {PN}"),
        ("p(0)<500", f"invalid threshold 'p(0)<500': {PCT}"),
        ("p(-5)<500", f"invalid threshold 'p(-5)<500': {PCT}"),
        ("p(100.01)<500", f"invalid threshold 'p(100.01)<500': {PCT}"),
        ("p(1e999)<500", f"invalid threshold 'p(1e999)<500': {PCT}"),
        ("p(95)", f"invalid threshold 'p(95)': {OPS}"),
        ("avg 500", f"invalid threshold 'avg 500': {OPS}"),
        ("avg=500", f"invalid threshold 'avg=500': {OPS}"),
        ("avg=>500", f"invalid threshold 'avg=>500': {OPS}"),
        ("avg<", "invalid threshold 'avg<': expected a number after '<'"),
        ("avg< =5", "invalid threshold 'avg< =5': expected a number after '<'"),
        ("avg<>5", "invalid threshold 'avg<>5': expected a number after '<'"),
        ("avg<500ms", "invalid threshold 'avg<500ms': expected a number after '<'"),
        ("avg<5 6", "invalid threshold 'avg<5 6': expected a number after '<'"),
        ("avg<- 5", "invalid threshold 'avg<- 5': expected a number after '<'"),
        ("avg<inf", "invalid threshold 'avg<inf': expected a number after '<'"),
        ("avg<nan", "invalid threshold 'avg<nan': expected a number after '<'"),
        ("avg<1_000", "invalid threshold 'avg<1_000': expected a number after '<'"),
        ("avg<0x10", "invalid threshold 'avg<0x10': expected a number after '<'"),
        ("avg<\u0665", "invalid threshold 'avg<\u0665': expected a number after '<'"),
        ("count===", "invalid threshold 'count===': expected a number after '==='"),
        ("count!==1", "invalid threshold 'count!==1': expected a number after '!='"),
        ("avg<1e999", "invalid threshold 'avg<1e999': number 1e999 is out of range"),
        ("avg<5\nx", "invalid threshold 'avg<5\\nx': expected a number after '<'"),
    ],
)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_threshold(text)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_threshold_expr_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        parse_threshold("avg<1").value = 2.0  # type: ignore[misc]


_space = st.text(alphabet=" \t\n", max_size=3)
_op = st.sampled_from(["<", "<=", ">", ">=", "==", "===", "!="])
_finite = st.floats(allow_nan=False, allow_infinity=False)
_plain_agg = st.sampled_from(["avg", "min", "med", "max", "rate", "count", "value"])
_pct = st.floats(min_value=0, max_value=100, exclude_min=True)


def _render_number(x: float, style: int) -> str:
    """Several spellings of the same float, all of which k6 accepts."""
    if style == 1 and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    if style == 2:
        return format(x, ".17e")
    return repr(x)


@given(
    agg=st.one_of(_plain_agg, st.just("p")),
    pct=_pct,
    op=_op,
    value=_finite,
    styles=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    spaces=st.lists(_space, min_size=8, max_size=8),
)
def test_parse_round_trips_generated_expressions(
    agg: str, pct: float, op: str, value: float, styles: tuple[int, int], spaces: list[str]
) -> None:
    s = spaces
    if agg == "p":
        head = f"p{s[1]}({s[2]}{_render_number(pct, styles[0])}{s[3]})"
    else:
        head = agg
    text = f"{s[0]}{head}{s[4]}{op}{s[5]}{_render_number(value, styles[1])}{s[6]}"
    expr = parse_threshold(text)
    assert expr.aggregation == agg
    assert expr.percentile == (pct if agg == "p" else None)
    assert expr.op == ("==" if op == "===" else op)
    assert expr.value == value
    assert expr.text == text.strip()


_fragments = st.sampled_from(
    ["p", "(", ")", "avg", "rate", "count", "value", "<", ">", "=", "!", "-", "+",
     ".", "e", "E", "1", "9", "0", " ", "\t", "\n", "_", "x", "\u0665", "\u00a0", "inf"]
)


@given(st.one_of(st.text(), st.lists(_fragments, max_size=12).map("".join)))
@example("p(95)<500")
@example("p(95)<")
def test_parse_never_raises_anything_but_value_error(text: str) -> None:
    try:
        expr = parse_threshold(text)
    except ValueError as err:
        message = str(err)
        assert message.startswith("invalid threshold ")
        assert "\n" not in message
    else:
        assert isinstance(expr, ThresholdExpr)
        assert math.isfinite(expr.value)
        assert expr.percentile is None or 0 < expr.percentile <= 100
        assert expr.text == text.strip()


# ------------------------------------------------------------- parse_selector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http_req_duration", ("http_req_duration", ())),
        ("  checks  ", ("checks", ())),
        (
            "http_req_duration{scenario:scanner-burst,name:scan}",
            ("http_req_duration", (("name", "scan"), ("scenario", "scanner-burst"))),
        ),
        ("http_reqs{ url : https://x/y?a=b }", ("http_reqs", (("url", "https://x/y?a=b"),))),
        ("group_duration{group:::initial_load}", ("group_duration", (("group", "::initial_load"),))),
        ("_m2 {a:{b}", ("_m2", (("a", "{b"),))),
        ("m{status:200, method:GET}", ("m", (("method", "GET"), ("status", "200")))),
    ],
)
def test_selector_valid(text: str, expected: tuple[str, tuple[tuple[str, str], ...]]) -> None:
    assert parse_selector(text) == expected


NAME_RULE = "must start with a letter or '_' and contain only letters, digits and '_'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid metric selector '': missing metric name"),
        ("{a:b}", "invalid metric selector '{a:b}': missing metric name"),
        ("1abc", f"invalid metric selector '1abc': metric name '1abc' {NAME_RULE}"),
        ("http-reqs", f"invalid metric selector 'http-reqs': metric name 'http-reqs' {NAME_RULE}"),
        ("m{a:b", "invalid metric selector 'm{a:b': missing closing '}'"),
        ("m{a:b}x", "invalid metric selector 'm{a:b}x': unexpected text after '}'"),
        ("m{a:b}}", "invalid metric selector 'm{a:b}}': unexpected text after '}'"),
        ("m{}", "invalid metric selector 'm{}': empty tag filter '{}'"),
        ("m{ }", "invalid metric selector 'm{ }': empty tag filter '{}'"),
        ("m{a}", "invalid metric selector 'm{a}': expected key:value, got 'a'"),
        ("m{:b}", "invalid metric selector 'm{:b}': empty tag key in ':b'"),
        ("m{a:}", "invalid metric selector 'm{a:}': empty value for tag 'a'"),
        ("m{a: }", "invalid metric selector 'm{a: }': empty value for tag 'a'"),
        ("m{a:b,}", "invalid metric selector 'm{a:b,}': empty tag (stray ',')"),
        ("m{a:b,a:c}", "invalid metric selector 'm{a:b,a:c}': duplicate tag 'a'"),
        ("m{a:b, a :c}", "invalid metric selector 'm{a:b, a :c}': duplicate tag 'a'"),
    ],
)
def test_selector_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_selector(text)
    assert str(info.value) == message


_metric_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
# Keys: anything but `,` `}` `:`; values: anything but `,` `}`; both non-blank
# and already trimmed, since the parser trims them.
_trimmed = lambda banned: st.text(  # noqa: E731
    alphabet=st.characters(blacklist_characters=banned, blacklist_categories=("Cs",)),
    min_size=1,
    max_size=15,
).map(str.strip).filter(bool)
_tags = st.dictionaries(_trimmed(",}:"), _trimmed(",}"), max_size=5)


@given(
    name=_metric_name,
    tags=_tags,
    order=st.randoms(use_true_random=False),
    pad=st.lists(st.sampled_from(["", " ", "\t"]), min_size=3, max_size=3),
)
def test_selector_round_trips(
    name: str, tags: dict[str, str], order: object, pad: list[str]
) -> None:
    pairs = list(tags.items())
    order.shuffle(pairs)  # type: ignore[attr-defined]
    body = ",".join(f"{pad[0]}{k}{pad[1]}:{pad[2]}{v}{pad[0]}" for k, v in pairs)
    text = f"{name}{{{body}}}" if pairs else name
    assert parse_selector(text) == (name, tuple(sorted(tags.items())))


@given(st.text())
def test_selector_never_raises_anything_but_value_error(text: str) -> None:
    try:
        name, tags = parse_selector(text)
    except ValueError as err:
        assert str(err).startswith("invalid metric selector ")
    else:
        assert name and all(k and v for k, v in tags)
        assert list(tags) == sorted(tags)


# ---------------------------------------------------------- VALID_AGGREGATIONS


def test_valid_aggregations() -> None:
    assert VALID_AGGREGATIONS == {
        "trend": frozenset({"avg", "min", "med", "max", "p"}),
        "rate": frozenset({"rate"}),
        "counter": frozenset({"count", "rate"}),
        "gauge": frozenset({"value", "last", "min", "max", "avg", "slope"}),
    }
    with pytest.raises(TypeError):
        VALID_AGGREGATIONS["trend"] = frozenset()  # type: ignore[index]


# ------------------------------------------------------------------ aggregate


@dataclass
class Trend:
    samples: list[float]

    @property
    def count(self) -> int:
        return len(self.samples)

    def avg(self) -> float:
        return sum(self.samples) / len(self.samples)

    def min(self) -> float:
        return min(self.samples)

    def max(self) -> float:
        return max(self.samples)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Rate:
    total: int
    passes: int


@dataclass
class Counter:
    count: float


@dataclass
class Gauge:
    value: float
    count: int


TREND = Trend([10.0, 20.0, 30.0, 40.0, 100.0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("avg<1", 40.0), ("min<1", 10.0), ("max<1", 100.0), ("med<1", 30.0), ("p(80)<1", 40.0),
     ("p(100)<1", 100.0)],
)
def test_aggregate_trend(text: str, expected: float) -> None:
    assert aggregate(parse_threshold(text), "trend", TREND, 10.0) == expected


def test_aggregate_rate_counter_gauge() -> None:
    assert aggregate(parse_threshold("rate<0.1"), "rate", Rate(total=8, passes=2), 1.0) == 0.25
    assert aggregate(parse_threshold("count>1"), "counter", Counter(7), 2.0) == 7.0
    assert aggregate(parse_threshold("count>1"), "counter", Counter(0), 2.0) == 0.0
    assert aggregate(parse_threshold("rate>1"), "counter", Counter(7), 2.0) == 3.5
    assert aggregate(parse_threshold("value>1"), "gauge", Gauge(value=-3.0, count=4), 1.0) == -3.0


@pytest.mark.parametrize(
    ("text", "kind", "sink"),
    [
        ("avg<1", "trend", None),
        ("p(95)<1", "trend", Trend([])),
        ("rate<1", "rate", None),
        ("rate<1", "rate", Rate(total=0, passes=0)),
        ("count<1", "counter", None),
        ("value<1", "gauge", None),
        ("value<1", "gauge", Gauge(value=0.0, count=0)),
    ],
)
def test_aggregate_no_data(text: str, kind: str, sink: object) -> None:
    assert aggregate(parse_threshold(text), kind, sink, 10.0) is None  # type: ignore[arg-type]


def test_aggregate_counter_rate_without_duration_is_no_data() -> None:
    assert aggregate(parse_threshold("rate<1"), "counter", Counter(5), 0.0) is None


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("p(95)<1", "counter",
         "threshold 'p(95)<1' uses 'p', which a counter metric does not have (count, rate)"),
        ("rate<1", "trend",
         "threshold 'rate<1' uses 'rate', which a trend metric does not have "
         "(avg, max, med, min, p)"),
        ("avg<1", "histogram",
         "unknown metric kind 'histogram': expected counter, rate, trend or gauge"),
    ],
)
def test_aggregate_rejects_wrong_kind(text: str, kind: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        aggregate(parse_threshold(text), kind, None, 1.0)
    assert str(info.value) == message


# ------------------------------------------------------------------- evaluate

_OPERATORS = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}


@given(op=st.sampled_from(sorted(_OPERATORS)), threshold=st.floats(), observed=st.floats())
@example(op="==", threshold=0.1 + 0.2, observed=0.3)
def test_evaluate_agrees_with_operator_module(op: str, threshold: float, observed: float) -> None:
    expr = ThresholdExpr("avg", None, op, threshold, f"avg{op}{threshold}")  # type: ignore[arg-type]
    verdict = evaluate(expr, observed)
    assert verdict == Verdict(_OPERATORS[op](observed, threshold), observed)
    assert type(verdict.passed) is bool


def test_evaluate_no_data() -> None:
    assert evaluate(parse_threshold("p(95)<500"), None) == Verdict(passed=None, observed=None)


def test_evaluate_examples() -> None:
    assert evaluate(parse_threshold("p(95)<500"), 499.9) == Verdict(True, 499.9)
    assert evaluate(parse_threshold("p(95)<500"), 500.0) == Verdict(False, 500.0)
    assert evaluate(parse_threshold("count===1"), 1.0).passed is True


def test_verdict_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        Verdict(True, 1.0).passed = False  # type: ignore[misc]


# --------------------------------------------------------------- format_value


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (1.0, "1"), (0.0, "0"), (-0.0, "0"), (500.0, "500"), (-3.0, "-3"), (1e20, "100000000000000000000"),
        (512.345, "512.35"), (512.3, "512.3"), (2.999, "3"), (0.01, "0.01"), (-0.5, "-0.5"),
        (0.0012, "0.0012"), (0.00123, "0.0012"), (0.009999, "0.01"), (-0.0049, "-0.0049"),
        (0.000012, "0.000012"), (1.2e-9, "1.2e-09"),
        (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"),
    ],
)
def test_format_value(x: float, text: str) -> None:
    assert format_value(x) == text


@given(_finite)
def test_format_value_is_close_and_short(x: float) -> None:
    text = format_value(x)
    back = float(text)
    if x.is_integer():
        assert back == x and "." not in text and "e" not in text
    elif abs(x) >= 0.01:
        assert abs(back - x) <= 0.005 + 1e-9 * abs(x)
        assert "." not in text or len(text.split(".")[1]) <= 2
    else:
        assert back != 0 and abs(back - x) <= 0.05 * abs(x)
