"""Reading plan YAML into a tree that remembers where every key and value is.

ruamel.yaml's round-trip loader keeps line numbers, but only on containers
and only as 0-based side tables; converting once into small immutable nodes
lets every later check say `file:line` without knowing about ruamel.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from loadaction.errors import PlanError, Source

ScalarValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True, eq=False)
class Scalar:
    value: ScalarValue
    source: Source


@dataclass(frozen=True, slots=True, eq=False)
class Seq:
    items: tuple[Node, ...]
    source: Source


@dataclass(frozen=True, slots=True, eq=False)
class Entry:
    key_source: Source
    value: Node


@dataclass(frozen=True, slots=True, eq=False)
class Map:
    """A mapping; `source` is the line of the key that holds it, so errors
    about the mapping as a whole point at its name."""

    entries: Mapping[str, Entry]
    source: Source

    def get(self, key: str) -> Node | None:
        entry = self.entries.get(key)
        return entry.value if entry else None

    def key_source(self, key: str) -> Source:
        return self.entries[key].key_source

    def items(self) -> Iterator[tuple[str, Entry]]:
        return iter(self.entries.items())

    def __contains__(self, key: str) -> bool:
        return key in self.entries


Node = Scalar | Seq | Map


def read_yaml(path: Path, display: str, cited_at: Source | None = None) -> Node:
    """Parse one file; `display` is the name errors show, `cited_at` where
    the file was named (an include), so a missing file points there."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlanError(f"cannot read {display}: {reason}", cited_at) from None
    try:
        raw = YAML(typ="rt").load(text)
    except DuplicateKeyError as exc:
        # ruamel's text quotes both values; values may be long, the key is enough.
        key = re.search(r'duplicate key "(.*?)"', exc.problem or "")
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        what = f"duplicate key '{key.group(1)}'" if key else "duplicate key"
        raise PlanError(what, Source(display, line)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = _first_line(exc.problem or exc.context or "syntax error")
        raise PlanError(f"invalid YAML: {problem}", Source(display, line)) from None
    except YAMLError as exc:
        raise PlanError(f"invalid YAML: {_first_line(str(exc))}", Source(display, 1)) from None
    return _convert(raw, Source(display, 1))


def plain(node: Node) -> Any:
    """The value without positions, for places that need raw data."""
    if isinstance(node, Scalar):
        return node.value
    if isinstance(node, Seq):
        return [plain(item) for item in node.items]
    return {key: plain(entry.value) for key, entry in node.items()}


def describe(node: Node) -> str:
    """How a value reads in an error message: `'ten'`, `a list`, `null`."""
    if isinstance(node, Map):
        return "a mapping"
    if isinstance(node, Seq):
        return "a list"
    value = node.value
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def key_text(key: Any) -> str:
    """Keys as the text a user would compare against (`true`, not `True`)."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _convert(raw: Any, source: Source) -> Node:
    if isinstance(raw, CommentedMap):
        return _convert_map(raw, source)
    if isinstance(raw, CommentedSeq):
        items = []
        for index, item in enumerate(raw):
            position = raw.lc.data.get(index)
            line = position[0] + 1 if position else source.line
            items.append(_convert(item, Source(source.file, line)))
        return Seq(tuple(items), source)
    return Scalar(_scalar(raw), source)


def _convert_map(raw: CommentedMap, source: Source) -> Map:
    entries: dict[str, Entry] = {}
    for key, value in raw.items():
        # Merged (`<<: *anchor`) keys have no position of their own.
        position = raw.lc.data.get(key)
        key_source = Source(source.file, position[0] + 1) if position else source
        if isinstance(value, (CommentedMap, CommentedSeq)):
            value_source = key_source
        else:
            value_source = Source(source.file, position[2] + 1) if position else source
        entries[key_text(key)] = Entry(key_source, _convert(value, value_source))
    return Map(entries, source)


def _scalar(raw: Any) -> ScalarValue:
    # ruamel returns subclasses (ScalarFloat, LiteralScalarString, ...) that
    # carry formatting; plain types keep equality and JSON encoding simple.
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return int(raw)
    if isinstance(raw, float):
        return float(raw)
    if isinstance(raw, (datetime.date, datetime.datetime)):
        return raw.isoformat()
    return str(raw)
