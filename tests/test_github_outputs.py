"""$GITHUB_OUTPUT in the heredoc form, and the job summary's 1 MiB cap."""

from __future__ import annotations

import pytest

from loadaction.github.outputs import (
    SUMMARY_LIMIT_BYTES,
    append_summary,
    fit_summary,
    format_outputs,
    write_outputs,
)


def parse_outputs(text: str) -> dict[str, str]:
    """Read the file as the runner does: `name<<DELIM`, lines, `DELIM`."""
    values, lines = {}, iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        name, _, delimiter = line.partition("<<")
        body = []
        for inner in lines:
            if inner == delimiter:
                break
            body.append(inner)
        values[name] = "\n".join(body)
    return values


def test_outputs_round_trip_multiline_values_and_append(tmp_path):
    path = tmp_path / "output"
    path.write_text("earlier=step\n")
    tricky = "line one\nvioloations<<EOF\nEOF\nghadelimiter_x"
    write_outputs(path, {"passed": "false", "report": tricky, "empty": ""})
    text = path.read_text()
    assert text.startswith("earlier=step\n")
    values = parse_outputs(text.split("\n", 1)[1])
    assert values == {"passed": "false", "report": tricky, "empty": ""}


def test_each_output_gets_its_own_random_delimiter():
    text = format_outputs({"a": "1", "b": "2"})
    delimiters = [line.partition("<<")[2] for line in text.splitlines() if "<<" in line]
    assert len(set(delimiters)) == 2
    assert all(d.startswith("ghadelimiter_") and len(d) > 30 for d in delimiters)


def test_output_names_cannot_inject():
    with pytest.raises(ValueError):
        format_outputs({"a\nb": "1"})


def test_summary_is_appended(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("# earlier step\n")
    append_summary(path, "## ours")
    assert path.read_text() == "# earlier step\n## ours\n"


def test_a_summary_over_the_limit_is_refused(tmp_path):
    with pytest.raises(ValueError):
        append_summary(tmp_path / "s.md", "x" * SUMMARY_LIMIT_BYTES)


def test_fit_summary_shrinks_the_budget_when_wide_characters_overflow_bytes():
    budgets = []

    def render(max_chars: int) -> str:
        budgets.append(max_chars)
        return "€" * min(max_chars, 5000)  # 3 bytes per character

    text = fit_summary(render, limit_bytes=6000)
    assert len(text.encode()) <= 6000
    assert budgets[0] == 6000 and len(budgets) > 1
