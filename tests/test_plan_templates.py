"""Template compilation: constants stay constants, lone expressions keep
their type, the sandbox holds, and references are recorded for checking."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from loadaction.errors import PlanError, Source
from loadaction.plan.templates import (
    ExpressionTemplate, Reference, Static, Templates, TextTemplate, stripe_signature,
)

SRC = Source("plan.yml", 7)
CTX = {
    "env": {"HOST": "example.test"},
    "secrets": {"KEY": "s3cret"},
    "vars": {"event_id": 42, "name": "Ada", "ids": [1, 2]},
    "vu": 3,
    "iter": 0,
    "scenario": {"name": "buy", "iteration": 5},
    "data": {"tickets": {"id": "t-1", "qty": 2}},
    "response": {"status": 200, "json": {"id": "x"}},
}


@pytest.fixture
def templates() -> Templates:
    return Templates()


def test_plain_strings_are_static(templates: Templates) -> None:
    compiled = templates.compile_value("/rest/v1/events", SRC)
    assert isinstance(compiled, Static)
    assert compiled.render({}) == "/rest/v1/events"


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ vars.event_id }}", 42),
    ("{{ data.tickets.qty }}", 2),
    ("{{ vars.ids }}", [1, 2]),
    ("{{ response.status == 200 }}", True),
    ("{{- vu -}}", 3),
    ("{{ vars.missing | default(none) }}", None),
    ("{{ '}}' }}", "}}"),
    ("{# a comment #}{{ vu }}", 3),
])
def test_a_lone_expression_keeps_its_type(templates: Templates, text: str,
                                          expected: object) -> None:
    compiled = templates.compile_value(text, SRC)
    assert isinstance(compiled, ExpressionTemplate)
    assert compiled.render(CTX) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("/events/{{ vars.event_id }}", "/events/42"),
    ("{{ vars.event_id }}{{ vu }}", "423"),
    (" {{ vars.event_id }}", " 42"),
    ("{% if vu > 1 %}many{% endif %}", "many"),
    ("Bearer {{ secrets.KEY }}", "Bearer s3cret"),
])
def test_other_templates_render_text(templates: Templates, text: str, expected: str) -> None:
    compiled = templates.compile_value(text, SRC)
    assert isinstance(compiled, TextTemplate)
    assert compiled.render(CTX) == expected


def test_nested_values_render_only_their_dynamic_parts(templates: Templates) -> None:
    compiled = templates.compile_value(
        {"event_id": "{{ vars.event_id }}", "quantity": 1, "tags": ["a", "{{ vu }}"],
         "meta": {"fixed": True}}, SRC)
    first = compiled.render(CTX)
    assert first == {"event_id": 42, "quantity": 1, "tags": ["a", 3], "meta": {"fixed": True}}
    assert list(first) == ["event_id", "quantity", "tags", "meta"]  # written order kept
    assert compiled.render({**CTX, "vu": 4})["tags"] == ["a", 4]
    assert first["tags"] == ["a", 3]  # an earlier render is not mutated by a later one


def test_all_static_containers_collapse_to_one_constant(templates: Templates) -> None:
    compiled = templates.compile_value({"a": [1, "b"], "c": {"d": None}}, SRC)
    assert isinstance(compiled, Static)
    assert compiled.render({}) is compiled.render({})


def test_undefined_names_fail_when_rendered(templates: Templates) -> None:
    with pytest.raises(UndefinedError):
        templates.compile_value("{{ vars.nope }}", SRC).render(CTX)
    with pytest.raises(UndefinedError):
        templates.compile_value("x{{ vars.nope }}", SRC).render(CTX)


def test_templates_that_can_loop_or_call_are_budgeted_and_still_sandboxed(
        templates: Templates) -> None:
    """The budgeted environment is a sandbox too (see test_template_budgets.py
    for the budgets themselves)."""
    compiled = templates.compile_value("{% for c in ['a'] %}{{ c|attr('__cla' ~ 'ss__') }}"
                                       "{% endfor %}", SRC)
    assert isinstance(compiled, TextTemplate)
    with pytest.raises(SecurityError):
        compiled.render(CTX)
    assert templates.compile_value("{{ vars.ids|map('string')|join('-') }}", SRC).render(CTX) == "1-2"


def test_the_sandbox_refuses_private_attributes(templates: Templates) -> None:
    with pytest.raises(PlanError) as caught:
        templates.compile_value("{{ ''.__class__ }}", SRC)
    assert str(caught.value) == "plan.yml:7: template uses unsafe attribute '__class__'"
    with pytest.raises(PlanError):
        templates.compile_value("{{ vars['__class__'] }}", SRC)
    # Computed attribute names get past the load-time check; the sandbox stops them.
    sneaky = templates.compile_value("{{ ''|attr('__cla' ~ 'ss__') }}", SRC)
    with pytest.raises(SecurityError):
        sneaky.render(CTX)
    with pytest.raises(SecurityError):
        templates.compile_value("x{{ ''|attr('__cla' ~ 'ss__') }}", SRC).render(CTX)


def test_syntax_errors_are_plan_errors_at_the_value(templates: Templates) -> None:
    with pytest.raises(PlanError) as caught:
        templates.compile_value("{{ vars.x ", SRC)
    assert str(caught.value) == ("plan.yml:7: template syntax error: unexpected end of "
                                 "template, expected 'end of print statement'.")
    with pytest.raises(PlanError, match="No filter named 'nofilter'"):
        templates.compile_value("{{ vars.x | nofilter }}", SRC)


def test_helpers(templates: Templates) -> None:
    uuid = templates.compile_value("{{ uuid() }}", SRC).render({})
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", uuid)
    assert isinstance(templates.compile_value("{{ now() }}", SRC).render({}), float)
    draws = {templates.compile_value("{{ random_int(1, 3) }}", SRC).render({})
             for _ in range(200)}
    assert draws == {1, 2, 3}
    signed = templates.compile_value("{{ stripe_signature('{}', 'whsec', 100) }}", SRC)
    assert signed.render({}) == stripe_signature("{}", "whsec", 100)


def test_stripe_signature_matches_stripes_scheme() -> None:
    expected = hmac.new(b"whsec_x", b"1700000000.{\"id\":1}", hashlib.sha256).hexdigest()
    assert stripe_signature('{"id":1}', "whsec_x", 1700000000) == f"t=1700000000,v1={expected}"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", stripe_signature("p", "s"))


def test_references_are_recorded(templates: Templates) -> None:
    templates.compile_value(
        "{{ vars.a }}{{ secrets['B'] }}{{ data.rows.x }}{{ env.C }}{{ vu }}{{ oops }}", SRC)
    templates.compile_value("{% for r in vars.ids %}{{ r.x }}{{ uuid() }}{% endfor %}", SRC)
    assert set(templates.references) == {
        Reference("vars", "a", SRC), Reference("secrets", "B", SRC),
        Reference("data", "rows", SRC), Reference("env", "C", SRC),
        Reference("vars", None, SRC), Reference("secrets", None, SRC),
        Reference("data", None, SRC), Reference("env", None, SRC),
        Reference("vu", None, SRC), Reference("oops", None, SRC),
        Reference("vars", "ids", SRC),
    }


def test_locally_assigned_names_are_not_context_references(templates: Templates) -> None:
    templates.compile_value("{% set vars = {'x': 1} %}{{ vars.y }}", SRC)
    assert templates.references == []


def test_each_load_gets_its_own_environment() -> None:
    first, second = Templates(), Templates()
    assert first.environment is not second.environment
    assert first.budgeted is not second.budgeted and first.budget is not second.budget
    first.compile_value("{{ vars.a }}", SRC)
    assert second.references == []
