"""Workflow commands (`::error file=…::`, `::group::`, `::add-mask::`, …).

The runner reads a command from any line of the step's log that starts with
`::` (after leading spaces), so every value we place in one is escaped the
way GitHub's own toolkit does: `%`, CR and LF in the message; additionally
`:` and `,` in properties, which would otherwise end a property early.
These functions build lines; the caller decides where they are printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_DATA_ESCAPES = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A"})
_PROPERTY_ESCAPES = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A", ":": "%3A", ",": "%2C"})


def escape_data(text: str) -> str:
    return text.translate(_DATA_ESCAPES)


def escape_property(text: str) -> str:
    return text.translate(_PROPERTY_ESCAPES)


def command(name: str, message: str = "",
            properties: Mapping[str, object | None] | None = None) -> str:
    """One command line; properties whose value is None are left out."""
    props = ",".join(f"{key}={escape_property(str(value))}"
                     for key, value in (properties or {}).items() if value is not None)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def error(message: str, *, file: str | None = None, line: int | None = None,
          title: str | None = None) -> str:
    """An error annotation; with `file` and `line` GitHub shows it on that line
    of the pull request's diff, and in the run's summary either way."""
    return command("error", message, {"file": file, "line": line, "title": title})


def warning(message: str, *, title: str | None = None) -> str:
    return command("warning", message, {"title": title})


def notice(message: str, *, title: str | None = None) -> str:
    return command("notice", message, {"title": title})


def group(title: str) -> str:
    return command("group", title)


def endgroup() -> str:
    return command("endgroup")


def add_masks(secrets: Iterable[str]) -> list[str]:
    """Lines that make the runner hide each secret in the rest of the log.

    The runner masks line by line, so a multi-line secret is also masked one
    line at a time (as GitHub advises); empty values would mask nothing."""
    lines: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        parts = [secret, *(p for p in secret.splitlines() if p.strip() and p != secret)]
        lines.extend(command("add-mask", part) for part in parts)
    return list(dict.fromkeys(lines))
