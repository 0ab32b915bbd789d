"""JSON paths compiled at load time, with a fast lane for plain paths.

jsonpath_ng builds a context object per match (several µs per lookup);
most plan paths are simple chains like `$.data[0].id`, which are walked
directly with the same semantics instead. Anything fancier (wildcards,
slices, filters, descendants) goes through jsonpath_ng.
"""

from __future__ import annotations

from typing import Any

from jsonpath_ng import jsonpath, parse
from jsonpath_ng.exceptions import JSONPathError

from loadaction.errors import PlanError, Source

_MISSING = object()


class CompiledPath:
    """A JSON path: `text` as written, `first(doc)` -> (found, value)."""

    __slots__ = ("text", "_steps", "_expression")

    def __init__(self, text: str, expression: jsonpath.JSONPath):
        self.text = text
        self._expression = expression
        self._steps = _plain_steps(expression)

    def first(self, doc: Any) -> tuple[bool, Any]:
        if self._steps is None:
            matches = self._expression.find(doc)
            return (True, matches[0].value) if matches else (False, None)
        value = doc
        for step in self._steps:
            if type(step) is str:
                if not isinstance(value, dict):
                    return False, None
                value = value.get(step, _MISSING)
                if value is _MISSING:
                    return False, None
            else:
                if not isinstance(value, (list, tuple)) or not -len(value) <= step < len(value):
                    return False, None
                value = value[step]
        return True, value

    def __repr__(self) -> str:
        return f"CompiledPath({self.text!r})"


_COMPILED: dict[str, CompiledPath] = {}
_CACHE_SIZE = 4096


def compile_path(text: str, source: Source) -> CompiledPath:
    """Parse `$...` now, so a typo fails the plan instead of every check.

    jsonpath_ng's parser takes most of a millisecond per path, and large
    plans repeat the same few paths, so each text is parsed once (compiled
    paths are immutable, so they are shared)."""
    compiled = _COMPILED.get(text)
    if compiled is not None:
        return compiled
    if not text.startswith("$"):
        raise PlanError(f"invalid JSON path '{text}': must start with '$'", source)
    try:
        expression = parse(text)
    except (JSONPathError, ValueError, TypeError) as exc:
        raise PlanError(f"invalid JSON path '{text}': {exc}", source) from None
    except RecursionError:
        raise PlanError(f"invalid JSON path '{text[:40]}...': nested too deeply", source) from None
    if len(_COMPILED) >= _CACHE_SIZE:
        _COMPILED.clear()
    compiled = _COMPILED[text] = CompiledPath(text, expression)
    return compiled


def _plain_steps(expression: jsonpath.JSONPath) -> tuple[str | int, ...] | None:
    """Keys and indices of a `$.a[0].b` chain, or None if the path is fancier."""
    steps: list[str | int] = []
    while isinstance(expression, jsonpath.Child):
        step = expression.right
        if isinstance(step, jsonpath.Fields) and len(step.fields) == 1 and step.fields[0] != "*":
            steps.append(step.fields[0])
        elif isinstance(step, jsonpath.Index) and len(step.indices) == 1:
            steps.append(step.indices[0])
        else:
            return None
        expression = expression.left
    if not isinstance(expression, jsonpath.Root):
        return None
    steps.reverse()
    return tuple(steps)
