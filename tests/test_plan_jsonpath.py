"""JSON paths: compiled at load time, with a fast lane that must agree with
jsonpath_ng wherever it is taken."""

from __future__ import annotations

import pytest
from jsonpath_ng import parse

from loadaction.errors import PlanError, Source
from loadaction.plan.jsonpath import compile_path

SRC = Source("plan.yml", 3)
DOCS = [
    {"a": {"b": [10, 20, {"c": None}]}, "url": "https://x", "list": [], "n": 0},
    {"a": {"b": {"0": "not a list"}}},
    {"a": "text"},
    [{"a": 1}, {"a": 2}],
    None,
    "string",
    {"a": {"b": [1]}, "x-y": {"z": True}},
]
PATHS = ["$", "$.a", "$.a.b", "$.a.b[0]", "$.a.b[1]", "$.a.b[-1]", "$.a.b[5]", "$.a.b[2].c",
         "$.url", "$.list[0]", "$.n", "$[0].a", "$['x-y'].z", "$.missing.deeper",
         "$.a.b[*]", "$..c", "$.a.b[0:2]"]


@pytest.mark.parametrize("path", PATHS)
def test_first_agrees_with_jsonpath_ng(path: str) -> None:
    compiled = compile_path(path, SRC)
    reference = parse(path)
    for doc in DOCS:
        matches = reference.find(doc)
        expected = (True, matches[0].value) if matches else (False, None)
        assert compiled.first(doc) == expected, (path, doc)


def test_found_none_differs_from_missing() -> None:
    path = compile_path("$.a.b[2].c", SRC)
    assert path.first(DOCS[0]) == (True, None)
    assert path.first({"a": {"b": [1, 2, {}]}}) == (False, None)


def test_text_is_kept() -> None:
    assert compile_path("$.data[0].id", SRC).text == "$.data[0].id"


@pytest.mark.parametrize(("text", "message"), [
    ("$.a[", "plan.yml:3: invalid JSON path '$.a[': Parse error near the end of string!"),
    ("$.a b", "plan.yml:3: invalid JSON path '$.a b': Parse error at 1:4 near token b (ID)"),
    ("data.id", "plan.yml:3: invalid JSON path 'data.id': must start with '$'"),
])
def test_bad_paths_are_plan_errors(text: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        compile_path(text, SRC)
    assert str(caught.value) == message
