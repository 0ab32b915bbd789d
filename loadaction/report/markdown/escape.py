"""Making document strings inert in GitHub Markdown.

The document carries strings the report's author does not control: error
messages echo the target's responses, check and scenario names come from
the plan. GitHub renders Markdown and a subset of HTML and notifies anyone
@-mentioned, so every such string goes through `md_escape`, and only a plain
https URL ever becomes a link.

Mentions and `#123` references are found in the rendered HTML, one text node
at a time (never inside `<code>`, `<pre>` or links), so `@` and `#` are
followed by an empty HTML comment: `@<!-- -->user` renders and copies as
`@user`, but `@` and `user` are two text nodes with the comment between them,
and neither the HTML nor the Markdown source holds `@user`. Two things that
look simpler do not work: a zero-width character (U+200B, U+200D, U+2060)
stops the mention but is copied with the text, so a pasted name or URL is
silently wrong; and an HTML entity (`&#64;`) is decoded by the Markdown
renderer into the very `@` it was meant to hide, before mentions are looked
for. A comment is raw HTML, so this holds in table cells, paragraphs and
`<summary>` lines alike; it would show literally inside a code span, which is
why no escaped string is ever put in one (backticks are escaped, and mentions
do not fire in code anyway).
"""

from __future__ import annotations

import re

# An empty HTML comment: invisible, copies as nothing, splits the text node.
SPLIT = "<!-- -->"
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
        "@": "@" + SPLIT,
        "#": "#" + SPLIT,
    }
)
_SAFE_URL = re.compile(r"https://[^\s<>()\[\]\"'`\\]+")


def md_escape(value: object) -> str:
    """Make `value` render as the literal text it is, on one line: HTML
    specials become entities (no raw HTML), Markdown specials are
    backslash-escaped (no links, emphasis or broken table cells), newlines
    become spaces (no new blocks), and `@` and `#` are followed by an empty
    HTML comment, so `@user` pings nobody and `#123` or `org/repo#123` puts
    no cross-reference into someone's issue, yet both copy as typed."""
    return "" if value is None else str(value).translate(_MD_ESCAPES)


def safe_url(url: object) -> str | None:
    """`url` when it is a plain https URL, else None: the document may come from anywhere."""
    return url if isinstance(url, str) and _SAFE_URL.fullmatch(url) else None
