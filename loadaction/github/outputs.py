"""Step outputs (`$GITHUB_OUTPUT`) and the job summary (`$GITHUB_STEP_SUMMARY`).

Outputs use the heredoc form with a random delimiter: a value (a path, a
URL) can then hold anything, newlines included, without ending early or
smuggling in a second output. The summary is appended, never replaced:
other steps of the job write to the same file.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

# GitHub refuses a step's summary above 1 MiB (and shows none of it).
SUMMARY_LIMIT_BYTES = 1024 * 1024


def format_outputs(values: Mapping[str, str]) -> str:
    """The text to append to $GITHUB_OUTPUT for `values`."""
    chunks = []
    for name, value in values.items():
        if not name or any(c in name for c in "\r\n=<"):
            raise ValueError(f"invalid output name {name!r}")
        delimiter = _delimiter(value)
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(chunks)


def _delimiter(value: str) -> str:
    while True:
        candidate = f"ghadelimiter_{secrets.token_hex(16)}"
        if candidate not in value:
            return candidate


def write_outputs(path: Path, values: Mapping[str, str]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(format_outputs(values))


def fit_summary(render: Callable[[int], str], limit_bytes: int = SUMMARY_LIMIT_BYTES) -> str:
    """Render with a character budget so the UTF-8 result fits `limit_bytes`.

    The renderer counts characters and GitHub counts bytes; most of a report
    is ASCII, so the first try uses the whole budget, and a retry shrinks it
    by the excess only when wide characters pushed it over."""
    budget = limit_bytes
    for _ in range(8):
        text = render(budget)
        size = len(text.encode("utf-8"))
        if size <= limit_bytes:
            return text
        budget = max(budget * limit_bytes // size - 1024, 1024)
    raise ValueError(f"the summary does not fit in {limit_bytes} bytes")


def append_summary(path: Path, markdown: str, limit_bytes: int = SUMMARY_LIMIT_BYTES) -> None:
    """Append one step's summary; refuse (ValueError) rather than write one
    GitHub would drop whole."""
    data = markdown if markdown.endswith("\n") else markdown + "\n"
    if len(data.encode("utf-8")) > limit_bytes:
        raise ValueError(f"summary of {len(data.encode('utf-8'))} bytes exceeds {limit_bytes}")
    with path.open("a", encoding="utf-8") as f:
        f.write(data)
