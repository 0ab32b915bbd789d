"""Making document strings inert in GitHub Markdown.

The document carries strings the report's author does not control: error
messages echo the target's responses, check and scenario names come from
the plan. GitHub renders Markdown and a subset of HTML and notifies anyone
@-mentioned, so every such string goes through `md_escape`, and only a plain
https URL ever becomes a link.
"""

from __future__ import annotations

import re

_CONTROL = {chr(c): None for c in (*range(0x20), 0x7F)}
_MD_ESCAPES = str.maketrans(
    {
        **_CONTROL,
        "\t": " ",
        "\n": " ",
        "\r": " ",
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "|": "\\|",
        "~": "\\~",
        "@": "@\u200d",
        "#": "#\u200d",
    }
)
_SAFE_URL = re.compile(r"https://[^\s<>()\[\]\"'`\\]+")


def md_escape(value: object) -> str:
    """Make `value` render as the literal text it is, on one line: HTML
    specials become entities (no raw HTML), Markdown specials are
    backslash-escaped (no links, emphasis or broken table cells), newlines
    become spaces (no new blocks), and `@` and `#` get a zero-width joiner
    so `@user` pings nobody and `#123` or `org/repo#123` does not put a
    cross-reference into someone's issue."""
    return "" if value is None else str(value).translate(_MD_ESCAPES)


def safe_url(url: object) -> str | None:
    """`url` when it is a plain https URL, else None: the document may come from anywhere."""
    return url if isinstance(url, str) and _SAFE_URL.fullmatch(url) else None
