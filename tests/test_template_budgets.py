"""Render budgets: every runaway template form is stopped, quickly, with a
reason; templates that are big but fine still render; simple templates stay
on the plain (unguarded, cheaper) path."""

from __future__ import annotations

import time
from typing import Any

import pytest

from loadaction.errors import PlanError, Source
from loadaction.plan.template_budget import (
    MAX_ITEMS, MAX_RENDER_BYTES, MAX_RENDER_SECONDS, TemplateBudgetError, amount, instrument,
)
from loadaction.plan.templates import (
    BudgetedExpressionTemplate, BudgetedTextTemplate, ExpressionTemplate, MappingTemplate,
    TemplateRenderError, Templates, TextTemplate,
)

SRC = Source("plan.yml", 12)
BIG = "x" * 1000
CTX: dict[str, Any] = {
    "env": {"HOST": "example.test"},
    "secrets": {},
    "vars": {"n": 99999, "w": 10**9, "big": BIG, "s": "a" * 100_000, "event_id": 42,
             "users": [{"name": "ada"}, {"name": "bob"}]},
    "vu": 3, "iter": 0, "scenario": {"name": "buy", "iteration": 0},
    "data": {}, "response": {"status": 200},
}
# Generous: a stopped render takes the 100 ms deadline at most, plus a busy
# runner's scheduling; a render that is not stopped takes minutes or dies.
BOUND_S = 3.0


@pytest.fixture
def templates() -> Templates:
    return Templates()


def _rejected(templates: Templates, text: str) -> tuple[str, float]:
    """The budget error `text` gets, at load time or when rendered, and how long it took."""
    start = time.monotonic()
    try:
        compiled = templates.compile_string(text, SRC)
        compiled.render(CTX)
    except PlanError as exc:
        return f"load: {exc}", time.monotonic() - start
    except TemplateBudgetError as exc:
        return f"run: {exc}", time.monotonic() - start
    raise AssertionError(f"{text!r} rendered within its budget")


# (template, where it is stopped, the reason)
RUNAWAY = [
    # loops, bounded by time and by what they write, not by range length
    ("{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
     "load", "ran over 100 ms"),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
     "load", "ran over 100 ms"),
    ("{% for i in range(vars.n) %}{% for j in range(vars.n) %}x{% endfor %}{% endfor %}",
     "run", "ran over 100 ms"),
    ("{% for i in range(vars.n) %}{% for j in range(vars.n) %}{{ vars.big }}{% endfor %}{% endfor %}",
     "run", "output over 1 MiB"),
    ("{% for c in vars.s %}{% for d in vars.s %}{% endfor %}{% endfor %}", "run", "ran over 100 ms"),
    # output that goes into a buffer before it is written counts as it is made
    ("{% set x %}{% for i in range(vars.n) %}{{ vars.big }}{% endfor %}{% endset %}{{ x|length }}",
     "run", "output over 1 MiB"),
    ("{% filter upper %}{% for i in range(vars.n) %}{{ vars.big }}{% endfor %}{% endfilter %}",
     "run", "output over 1 MiB"),
    ("{% macro m() %}{% for i in range(99999) %}" + "y" * 1000 + "{% endfor %}{% endmacro %}"
     "{{ m()|length }}", "load", "output over 1 MiB"),
    ("{{ 'x' * 1000000 }}{{ 'x' * 1000000 }}", "load", "output over 1 MiB"),
    # products and powers, checked before anything is allocated
    ("{{ 'x' * 10**10 }}", "load",
     "string product of 10000000000 characters is over the 1 MiB limit"),
    ("{{ vars.big * vars.w }}", "run",
     "string product of 1000000000000 characters is over the 1 MiB limit"),
    ("{{ [0] * 10**9 }}", "load", "list product of 1000000000 items is over the"),
    ("{{ [vars.s] * 1000 }}", "run", "a list product that would print as over 1 MiB"),
    ("{{ 10 ** 100000 }}", "load", "10 ** 100000 is over the 65536-bit number limit"),
    # formatting: widths and precisions, and how often a big value is repeated
    ("{{ '%99999999999s' | format('x') }}", "load",
     "format width 99999999999 is over the 1 MiB limit"),
    ("{{ '%999999999s' % 'x' }}", "load", "format width 999999999 is over the 1 MiB limit"),
    ("{{ '%.999999999f' % 1.5 }}", "load", "format width 999999999 is over the 1 MiB limit"),
    ("{{ '%*s' % (vars.w, 'x') }}", "run", "format width 1000000000 is over the 1 MiB limit"),
    ("{{ '{:999999999}'.format('x') }}", "load", "format width 999999999 is over"),
    ("{{ '{:{w}}'.format('x', w=vars.w) }}", "run", "format width 1000000000 is over"),
    ("{{ ('%(a)s' * 100000) % {'a': vars.big} }}", "run", "formatted text is over the 1 MiB limit"),
    ("{{ ('{0}' * 300000).format(vars.big) }}", "run", "formatted text is over the 1 MiB limit"),
    # str methods and filters that grow their input by an argument
    ("{{ 'x'|center(1000000000) }}", "load", "padding of 1000000000 characters"),
    ("{{ 'x'.ljust(vars.w) }}", "run", "padding of 1000000000 characters"),
    ("{{ 'x'.zfill(vars.w) }}", "run", "padding of 1000000000 characters"),
    ("{{ vars.s.replace('a', vars.big) }}", "run", "replacing of 100000000 characters"),
    ("{{ vars.s|replace('a', vars.big) }}", "run", "replacing of 100000000 characters"),
    ("{{ vars.big.join(range(2000)|map('string')) }}", "run",
     "joined text of 2005890 characters is over the 1 MiB limit"),
    ("{{ ('\t' * 1000).expandtabs(100000) }}", "load", "expanding tabs of 100001000 characters"),
    ("{{ ('x' * 100000).translate({120: vars.big}) }}", "run", "translating of 100000000"),
    ("{{ ('\n' * 100000)|indent(100000) }}", "load", "indenting of 10000200000 characters"),
    ("{{ lipsum(1000000) }}", "load", "lipsum of 1000000 paragraphs"),
    ("{{ [1]|batch(1000000000, 'x')|list }}", "load", "batches of 1000000000 items"),
    ("{{ [1]|slice(1000000000)|list }}", "load", "1000000000 slices are over"),
    ("{{ ('x' * 1000000)|wordwrap(1) }}", "load",
     "wordwrap of 1000000 characters is over the 128 KiB limit"),
    ("{{ ('x' * 100000)|wordwrap(1) }}", "load",
     "wordwrap of a 100000-character word at width 1 would take too long"),
    ("{{ ('a.com ' * 30000)|urlize }}", "load",
     "urlize of 180000 characters is over the 128 KiB limit"),
    ("{{ range(2000)|map('string')|map('center', 1000)|sum(start='') }}", "load",
     "a sum of 2000000 characters is over the 1 MiB limit"),
    ("{{ {'a': [1, 2]}|tojson(indent=100000000) }}", "load", "tojson indent 100000000"),
    # repeated doubling, in loops, macros and namespaces
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}{{ ns.s }}", "load", "joined text of 2097152 characters"),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
     "{% endfor %}{{ ns.s }}", "load", "joined text of 2097152 characters"),
    ("{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}"
     "{% endfor %}{{ ns.l|length }}", "load", "a list of 2097152 items is over"),
    ("{% set l = [1] %}{% for i in range(60) %}{{ l.extend(l) }}{% endfor %}", "load",
     "a list of 2097152 items is over"),
    ("{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}", "load",
     "joined text of 2097152 characters"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "load", "calls nested too deeply"),
    # a list holding the same list twice, 60 times over, prints as 2**60 items
    ("{% set ns = namespace(a=[vars.big]) %}{% for i in range(60) %}"
     "{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a }}", "run",
     "a value that would print as over 1 MiB"),
    ("{% set ns = namespace(a=[vars.big]) %}{% for i in range(60) %}"
     "{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a|tojson }}", "run",
     "JSON that would print as over 1 MiB"),
    ("{% set ns = namespace(a=[vars.big]) %}{% for i in range(60) %}"
     "{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ '%s' % (ns.a,) }}", "run",
     "a value that would print as over 1 MiB"),
    # many values, each within the limit: what a render makes is limited too
    ("{{ range(99999)|map('string')|map('center', 9999)|list|length }}", "load",
     "made over 16 MiB of strings and lists"),
    ("{% set l = [] %}{% for i in range(99999) %}{{ l.append('x' * (10000 + i)) }}{% endfor %}",
     "load", "made over 16 MiB of strings and lists"),
]


@pytest.mark.parametrize(("text", "stage", "reason"), RUNAWAY,
                         ids=[f"{i}-{stage}" for i, (_, stage, _) in enumerate(RUNAWAY)])
def test_each_runaway_form_is_stopped_with_its_reason(templates: Templates, text: str,
                                                      stage: str, reason: str) -> None:
    message, seconds = _rejected(templates, text)
    assert seconds < BOUND_S, (text, seconds)
    if stage == "load":
        assert message.startswith("load: plan.yml:12: template exceeded the render budget: "), message
    else:
        assert message.startswith(
            "run: template at plan.yml:12 exceeded the render budget: "), message
    assert reason in message, message


def test_the_budgets_are_documented_values() -> None:
    assert MAX_RENDER_BYTES == 1 << 20 and amount(MAX_RENDER_BYTES) == "1 MiB"
    assert MAX_RENDER_SECONDS == 0.1
    assert MAX_ITEMS == 1 << 20


def test_custom_budgets_are_honoured_and_named() -> None:
    small = Templates(max_bytes=1024, max_seconds=0.01)
    with pytest.raises(PlanError, match="output over 1 KiB"):
        small.compile_string("{% for i in range(2000) %}x{% endfor %}", SRC)
    start = time.monotonic()
    with pytest.raises(PlanError, match="ran over 10 ms"):
        small.compile_string("{% for i in range(99999) %}{% for j in range(99999) %}"
                             "{% endfor %}{% endfor %}", SRC)
    assert time.monotonic() - start < BOUND_S
    # a plain template's output is checked too
    plain = small.compile_string("{{ vars.s }}!", SRC)
    with pytest.raises(TemplateBudgetError, match="output over 1 KiB"):
        plain.render(CTX)


# ---------------------------------------------------------------- still fine

def test_a_100_kb_payload_from_a_loop_renders(templates: Templates) -> None:
    text = ('[{% for i in range(1000) %}{"n": {{ i }}, "pad": "{{ "x" * 80 }}"}'
            '{% if not loop.last %},{% endif %}{% endfor %}]')
    compiled = templates.compile_string(text, SRC)
    assert isinstance(compiled, BudgetedTextTemplate)
    for _ in range(3):  # the budget is per render, not per template
        out = compiled.render(CTX)
    assert out.startswith('[{"n": 0, "pad": "xxx') and out.endswith('"}]')
    assert 95_000 < len(out) < 110_000


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ 'x' * 1000 }}", "x" * 1000),
    ("{{ '%05d-%s' % (42, 'a') }}", "00042-a"),
    ("{{ '%(a)s/%(b)s' % {'a': 1, 'b': 2} }}", "1/2"),
    ("{{ '%s' | format(vu) }}", "3"),
    ("{{ '{:>6}|{:.2f}'.format('ab', 3.14159) }}", "    ab|3.14"),
    ("{{ 'ab'|center(6) }}", "  ab  "),
    ("{{ 'a-b'.replace('-', '--') }}", "a--b"),
    ("{{ range(5)|join(',') }}", "0,1,2,3,4"),
    ("{{ vars.users|join(',', attribute='name') }}", "ada,bob"),
    ("{{ ','.join(['a', 'b']) }}", "a,b"),
    ("{{ range(3)|map('string')|join }}", "012"),
    ("{{ 2 ** 64 }}", 2**64),
    ("{{ [1, 2] * 2 }}", [1, 2, 1, 2]),
    ("{{ [1] + [2] }}", [1, 2]),
    ("{{ 'a' ~ vu ~ 'b' }}", "a3b"),
    ("{{ ([[1, 2]] * 3)|sum(start=[]) }}", [1, 2, 1, 2, 1, 2]),
    ("{{ [1, 2, 3, 4, 5]|batch(2)|list }}", [[1, 2], [3, 4], [5]]),
    ("{{ 'one two'|wordwrap(3) }}", "one\ntwo"),
    ("{{ 'a\nb'|indent(2, first=true) }}", "  a\n  b"),
    ("{{ {'b': [1]}|tojson(indent=2) }}", '{\n  "b": [\n    1\n  ]\n}'),
    ("{{ lipsum(1, false, 5, 6)|wordcount }}", 5),
    ("{{ vars.users|map(attribute='name')|list }}", ["ada", "bob"]),
    ("{{ (vars.big * 1000)|length }}", 1_000_000),
    ("{% set ns = namespace(n=0) %}{% for i in range(100) %}{% set ns.n = ns.n + i %}"
     "{% endfor %}{{ ns.n }}", "4950"),
    ("{% macro greet(who) %}hi {{ who }}{% endmacro %}{{ greet('ada') }}", "hi ada"),
    ("{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}in{% endcall %}", "[in]"),
    ("{% for u in [[1, [2]], [3]] recursive %}{% if u is iterable %}{{ loop(u) }}"
     "{% else %}{{ u }}{% endif %}{% endfor %}", "123"),
    ("{% set x %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %}[{{ x }}]", "[012]"),
    ("{{ [vars.big, vars.big]|tojson|length }}", 2 * 1002 + 4),
])
def test_big_but_fine_templates_still_work(templates: Templates, text: str,
                                            expected: object) -> None:
    assert templates.compile_string(text, SRC).render(CTX) == expected


def test_simple_templates_stay_on_the_plain_path(templates: Templates) -> None:
    """The typical request template pays nothing for budgets but one length check."""
    body = templates.compile_value(
        {"event_id": "{{ vars.event_id }}", "email": "vu{{ vu }}@example.test",
         "next": "{{ iter + 1 }}", "host": "{{ env.HOST ~ '/x' if vu > 1 else 'no' }}"}, SRC)
    assert isinstance(body, MappingTemplate)
    parts = dict(body._dynamic)
    assert type(parts["event_id"]) is ExpressionTemplate
    assert type(parts["email"]) is TextTemplate
    assert type(parts["next"]) is ExpressionTemplate
    assert type(parts["host"]) is ExpressionTemplate
    assert body.render(CTX) == {"event_id": 42, "email": "vu3@example.test", "next": 1,
                                "host": "example.test/x"}
    for text in ("{{ uuid() }}", "{{ vars.x | default(1) }}", "{{ vu * 2 }}",
                 "{{ [vu] }}", "{% set a = 1 %}{{ a }}", "{% for i in vars.ids %}{% endfor %}"):
        compiled = templates.compile_string(text, SRC)
        assert isinstance(compiled, (BudgetedTextTemplate, BudgetedExpressionTemplate)), text


# ---------------------------------------------------------------- messages

class _Raises:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __call__(self, *args: Any) -> Any:
        raise self.exc

    def __str__(self) -> str:
        raise self.exc


@pytest.mark.parametrize("text", ["{{ vars.boom() }}", "x{{ vars.boom() }}", "x{{ vars.boom }}"])
def test_no_error_has_an_empty_reason(templates: Templates, text: str) -> None:
    compiled = templates.compile_string(text, SRC)
    with pytest.raises(TemplateBudgetError) as caught:
        compiled.render({**CTX, "vars": {"boom": _Raises(MemoryError())}})
    assert str(caught.value) == ("template at plan.yml:12 exceeded the render budget: "
                                 "ran out of memory")
    with pytest.raises(TemplateRenderError) as failed:
        compiled.render({**CTX, "vars": {"boom": _Raises(OverflowError())}})
    assert str(failed.value) == "template at plan.yml:12 failed: OverflowError"


def test_errors_with_a_message_pass_through_unchanged(templates: Templates) -> None:
    """DataExhausted (and any other error that says something) is the engine's to handle."""
    class Exhausted(Exception):
        pass

    error = Exhausted("data 'rows' exhausted after 3 rows")
    for text in ("{{ vars.boom() }}", "x{{ vars.boom() }}", "x{{ vars.boom }}"):
        with pytest.raises(Exhausted) as caught:
            templates.compile_string(text, SRC).render({**CTX, "vars": {"boom": _Raises(error)}})
        assert caught.value is error


def test_a_budget_error_reaches_the_engines_message_intact(templates: Templates) -> None:
    """engine/vu.py reports f"'{what}' could not be rendered: {exc}"."""
    compiled = templates.compile_string("{{ 'x' * vars.w }}", SRC)
    with pytest.raises(TemplateBudgetError) as caught:
        compiled.render(CTX)
    assert f"'body' could not be rendered: {caught.value}" == (
        "'body' could not be rendered: template at plan.yml:12 exceeded the render budget: "
        "string product of 1000000000 characters is over the 1 MiB limit")


# ---------------------------------------------------------------- load time

def test_templates_reading_only_vu_iter_and_scenario_are_tried_at_load(templates: Templates) -> None:
    with pytest.raises(PlanError) as caught:
        templates.compile_string("{{ 'x' * (vu * 10**10) }}", SRC)
    assert str(caught.value) == ("plan.yml:12: template exceeded the render budget: string "
                                 "product of 10000000000 characters is over the 1 MiB limit")
    # other render errors are left to run time, as before
    compiled = templates.compile_string("{{ 1 // (vu - 1) }}", SRC)
    with pytest.raises(ZeroDivisionError):
        compiled.render({**CTX, "vu": 1})


def test_check_budgets_tries_templates_with_the_values_the_loader_knows(templates: Templates) -> None:
    runaway = Source("plan.yml", 20)
    templates.compile_string("{{ 'x' * vars.n * vars.n }}", runaway)
    templates.compile_string("{{ 'x' * env.N|int }}", Source("plan.yml", 21))
    templates.compile_string("{{ 'x' * response.status * 10**9 }}", Source("plan.yml", 22))
    templates.compile_string("{{ 'x' * data.rows.n }}", Source("plan.yml", 23))
    templates.check_budgets({"env": {"N": "5"}})  # vars unknown: not tried
    with pytest.raises(PlanError) as caught:
        templates.check_budgets({"env": {"N": "5"}, "vars": {"n": 99999}})
    assert str(caught.value) == ("plan.yml:20: template exceeded the render budget: string "
                                 "product of 9999800001 characters is over the 1 MiB limit")
    with pytest.raises(PlanError, match="plan.yml:21: .*string product of 10000000000 "):
        templates.check_budgets({"env": {"N": "10000000000"}})


def test_compiling_never_folds_a_constant_unguarded(templates: Templates) -> None:
    """Jinja folds constant filters and operators while compiling (and while
    finding the names a template reads): those run through the guards too."""
    for text in ("{{ 'x'|center(1000000000) }}", "{{ '%999999999s'|format('x') }}",
                 "{{ [1]|slice(1000000000)|list }}", "x{{ 9 ** 999999 }}",
                 "{{ ('x' * 1000000)|wordwrap(1) }}"):
        start = time.monotonic()
        with pytest.raises(PlanError, match="exceeded the render budget"):
            templates.compile_string(text, SRC)
        assert time.monotonic() - start < BOUND_S, text


def test_a_constant_within_budget_is_folded(templates: Templates) -> None:
    """`'x' * 80` in a loop is worked out once, when compiling, as Jinja
    does for operators that are not guarded."""
    text = "{% for i in range(2) %}{{ 'ab' * 3 }}{% endfor %}"
    tree = instrument(templates.budgeted.parse(text), templates.budgeted)
    code = templates.budgeted.compile(tree, raw=True)
    assert "'ababab'" in code and "call_binop" not in code
    assert templates.compile_string(text, SRC).render(CTX) == "ab" * 6


def test_shared_parts_that_double_each_iteration_are_stopped(templates: Templates) -> None:
    """`set: {x: {a: "{{ vars.x }}", b: "{{ vars.x }}"}}` run each iteration
    doubles what vars.x prints as: the set is refused once it is too big."""
    compiled = templates.compile_value({"a": "{{ vars.x }}", "b": "{{ vars.x }}"}, SRC)
    value: Any = [BIG]
    with pytest.raises(TemplateBudgetError, match="a value that would print as over 1 MiB") as caught:
        for _ in range(60):
            value = compiled.render({**CTX, "vars": {"x": value}})
    assert "template at plan.yml:12" in str(caught.value)
    # one container part (or none) cannot double anything and is not measured
    single = templates.compile_value({"a": "{{ vars.x }}", "b": "{{ vu }}x"}, SRC)
    assert single._budget is None


def test_renders_after_a_budget_error_start_afresh(templates: Templates) -> None:
    runaway = templates.compile_string(
        "{% for i in range(vars.n) %}{% for j in range(vars.n) %}{% endfor %}{% endfor %}", SRC)
    fine = templates.compile_string("{% for i in range(3) %}{{ i }}{% endfor %}", SRC)
    with pytest.raises(TemplateBudgetError, match="ran over"):
        runaway.render(CTX)
    time.sleep(MAX_RENDER_SECONDS)
    assert fine.render(CTX) == "012"
    # and compiling after a render does not inherit its deadline
    assert templates.compile_string("{{ 'ab'|center(4) }}", SRC).render(CTX) == " ab "
