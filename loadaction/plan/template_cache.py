"""Compiling each distinct template text once per plan.

Jinja's compile (parse, generate Python, compile it) takes about half a
millisecond a template, which made loading a generated plan of a few
megabytes take seconds; such plans repeat the same few templates
(`{{ uuid() }}`, a header, a `when`) hundreds of times. A repeated text
reuses the compiled template, placed at its own line, and records its
references again at that line, so errors still point at every use.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from loadaction.errors import Source
from loadaction.plan.model import Renderable
from loadaction.plan.templates import Reference, Templates


class CachedTemplates(Templates):
    def __init__(self) -> None:
        super().__init__()
        self._compiled: dict[str, tuple[Renderable, tuple[Reference, ...]]] = {}

    def compile_string(self, text: str, source: Source) -> Renderable:
        hit = self._compiled.get(text)
        if hit is None:
            first = len(self.references)
            compiled = super().compile_string(text, source)
            self._compiled[text] = (compiled, tuple(self.references[first:]))
            return compiled
        compiled, references = hit
        self.references.extend(replace(reference, source=source) for reference in references)
        return _placed(compiled, source)


def _placed(compiled: Renderable, source: Source) -> Renderable:
    """The compiled template with `source` as its line (render errors name it)."""
    if getattr(compiled, "source", source) == source:
        return compiled
    placed = copy.copy(compiled)
    try:
        placed.source = source  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - a renderable without a settable line
        return compiled
    return placed
