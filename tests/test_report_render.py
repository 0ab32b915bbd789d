from __future__ import annotations

import json

import pytest
from tests.test_report_fixtures import make_doc

from loadaction.errors import ExitCode, PlanError
from loadaction.report import render


def test_json_is_the_document_in_its_own_order() -> None:
    doc = make_doc()
    text = render(doc, "json")
    assert text.startswith('{\n  "schema": 1,\n  "tool": {')
    assert json.loads(text) == doc
    assert list(json.loads(text)) == list(doc)


def test_text_and_md_dispatch() -> None:
    doc = make_doc()
    assert render(doc, "text").rstrip().endswith("✗ 3 budget(s) violated (1 with no data)")
    assert render(doc, "md").startswith("### ❌ loadaction:")
    assert "\x1b[" in render(doc, "text", color=True)


def test_unknown_format_is_an_invalid_input() -> None:
    with pytest.raises(PlanError) as caught:
        render(make_doc(), "markdown")
    assert caught.value.exit_code == ExitCode.INVALID
    assert str(caught.value) == "unknown report format 'markdown' (expected text, json, md, junit)"
    with pytest.raises(PlanError, match=r"did you mean 'text'\?"):
        render(make_doc(), "txt")
