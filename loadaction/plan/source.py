"""Reading plan YAML into a tree that remembers where every key and value is.

Plans come from users and from pull requests, so reading one is bounded:
the file's size is checked before it is read, the bytes must be UTF-8, only
the core schema's tags are accepted (no `!!python/...`, no custom `!tags`),
nesting depth is limited, and aliases may repeat only so many nodes (a
"billion laughs" document is refused at the alias that crosses the limit).

The tree is built from the parser's events, without ruamel's composer and
constructor: that keeps all of the above in one loop that never recurses,
gives every node its line, and is fast. ruamel.yaml's C parser
(ruamel.yaml.clib) is used when installed — it reads a few megabytes in a
fraction of a second — and its pure-Python parser otherwise. Scalars resolve
as YAML 1.2 does (ruamel's rules: `yes` is a string, `0o17` an octal int).
"""

from __future__ import annotations

import datetime
import gc
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
    SequenceEndEvent, SequenceStartEvent, StreamEndEvent,
)
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import VersionedResolver

from loadaction.errors import PlanError, Source
from loadaction.plan.inputs import PlanInputs

try:  # ruamel.yaml.clib: libyaml's parser, about 30 times faster
    from _ruamel_yaml import CParser as _CParser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the installation
    _CParser = None

ScalarValue = str | int | float | bool | None

MAX_PLAN_BYTES = 8 << 20
"""A plan and everything it includes or extends, in bytes: real plans are a
few kilobytes; the largest we have seen generated are a few megabytes."""
MAX_DEPTH = 100
"""Nesting levels of mappings and lists: a flow with steps in groups in ifs,
with a JSON body, rarely goes past 15."""
MAX_NODES = 2_000_000
"""Values (keys not counted) in a plan and its files, aliases expanded: about
what 8 MiB of YAML can hold, so it bounds what the rest of loading walks."""
MAX_ALIAS_NODES = 100_000
"""Values that aliases may repeat: `headers: *common` used a hundred times is
a few hundred; a billion-laughs document is billions."""
_ERROR_REPARSE_BYTES = 256 << 10
"""A syntax error found by the C parser is parsed again by the pure one, whose
messages the docs show, when the file is at most this large."""

_TAG_PREFIX = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP, _MERGE = (
    _TAG_PREFIX + name for name in ("str", "int", "float", "bool", "null", "timestamp", "merge"))
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL})
_MAP_TAG, _SEQ_TAG = _TAG_PREFIX + "map", _TAG_PREFIX + "seq"
_ALLOWED_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!map, !!seq"


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


class ReadBudget:
    """What one plan load may still read, shared by the plan file and every
    file it includes or extends, and what it has read (`inputs`)."""

    def __init__(self, max_bytes: int = MAX_PLAN_BYTES, max_nodes: int = MAX_NODES,
                 max_alias_nodes: int = MAX_ALIAS_NODES) -> None:
        self.max_bytes, self.bytes = max_bytes, 0
        self.max_nodes, self.nodes = max_nodes, 0
        self.max_alias_nodes, self.alias_nodes = max_alias_nodes, 0
        self.inputs = PlanInputs()


def read_yaml(path: Path, display: str, cited_at: Source | None = None,
              budget: ReadBudget | None = None) -> Node:
    """Parse one file; `display` is the name errors show, `cited_at` where
    the file was named (an include), so a missing file points there."""
    budget = budget or ReadBudget()
    data = _read_bytes(path, display, cited_at, budget)
    budget.inputs.record(display, data)
    return parse_yaml(_decode(data, display), display, budget)


def parse_yaml(text: str, display: str, budget: ReadBudget | None = None) -> Node:
    """The one document in `text` (null for an empty stream)."""
    budget = budget or ReadBudget()
    before = (budget.nodes, budget.alias_nodes)
    try:
        return _Builder(display, budget).build(_c_parser(text) if _CParser is not None else _pure_parser(text))
    except (MarkedYAMLError, ReaderError) as exc:
        if _CParser is None or len(text) > _ERROR_REPARSE_BYTES:
            raise _syntax_error(exc, text, display) from None
        error = exc
    except YAMLError as exc:
        raise PlanError(f"invalid YAML: {_first_line(str(exc))}", Source(display, 1)) from None
    # libyaml refused a small file: ruamel's own parser has the final word (and
    # the messages the docs show), so both accept the same plans.
    budget.nodes, budget.alias_nodes = before
    try:
        return _Builder(display, budget).build(_pure_parser(text))
    except (MarkedYAMLError, ReaderError) as exc:
        raise _syntax_error(exc, text, display) from None
    except YAMLError:
        raise _syntax_error(error, text, display) from None


@contextmanager
def collections_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building a tree of a million small
    objects (none of them cyclic) would otherwise trigger full collections
    that rescan the tree, which costs more than building it."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


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


def format_bytes(count: int) -> str:
    """`8 MiB`, `50.2 MiB`, `512 KiB`: sizes in limit messages."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"


# ---------------------------------------------------------------- reading

def _read_bytes(path: Path, display: str, cited_at: Source | None, budget: ReadBudget) -> bytes:
    """The file's bytes, refusing before reading what the budget cannot hold;
    only regular files are read (a FIFO would block, a device never end)."""
    remaining = budget.max_bytes - budget.bytes
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "Is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file")
        if info.st_size > remaining:
            raise _too_large(display, info.st_size, cited_at, budget)
        with open(path, "rb") as handle:
            data = handle.read(remaining + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PlanError(f"cannot read {display}: {reason}", cited_at) from None
    if len(data) > remaining:  # it grew while we read it
        raise _too_large(display, None, cited_at, budget)
    budget.bytes += len(data)
    return data


def _too_large(display: str, size: int | None, cited_at: Source | None,
               budget: ReadBudget) -> PlanError:
    limit = format_bytes(budget.max_bytes)
    got = f" ({format_bytes(size)})" if size is not None else ""
    if budget.bytes and (size is None or size <= budget.max_bytes):
        what = (f"{display}{got} would take the plan and its includes past {limit}, "
                "the size limit for a plan")
    else:
        what = f"{display} is larger than {limit}{got}, the size limit for a plan"
    return PlanError(what, cited_at or Source(display, 1),
                     "keep large inputs in data files, or split the plan")


def _decode(data: bytes, display: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PlanError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column})",
                        Source(display, line), "plans must be UTF-8 text") from None
    return text[1:] if text.startswith("\ufeff") else text


# ---------------------------------------------------------------- parsing

def _c_parser(text: str) -> Any:
    return _CParser(text)


def _pure_parser(text: str) -> Any:
    _, parser = YAML(typ="safe", pure=True).get_constructor_parser(text)
    return parser


def _syntax_error(exc: YAMLError, text: str, display: str) -> PlanError:
    if isinstance(exc, ReaderError):
        position = exc.position if isinstance(exc.position, int) else 0
        line = text.count("\n", 0, position) + 1
        character = text[position] if position < len(text) else ""
        code = f"#x{ord(character):04x}" if character else "a character"
        return PlanError(f"invalid YAML: unacceptable character {code} (control characters "
                         "are not allowed)", Source(display, line))
    mark = exc.problem_mark or exc.context_mark  # type: ignore[attr-defined]
    line = mark.line + 1 if mark is not None else 1
    problem = _first_line(exc.problem or exc.context or "syntax error")  # type: ignore[attr-defined]
    return PlanError(f"invalid YAML: {problem}", Source(display, line))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


# ---------------------------------------------------------------- building

_RESOLVERS: dict[str, list[tuple[str, Any]]] = {
    first: [(str(tag), regexp) for tag, regexp in rules]
    for first, rules in VersionedResolver().versioned_resolver.items()
}


class _Frame:
    """A mapping or list being built; `weight` counts its values, aliases
    expanded, so an alias to it adds that many."""

    __slots__ = ("is_map", "source", "anchor", "items", "entries", "merges", "key",
                 "key_source", "weight")

    def __init__(self, is_map: bool, source: Source, anchor: str | None) -> None:
        self.is_map = is_map
        self.source = source
        self.anchor = anchor
        if is_map:
            self.entries: dict[str, Entry] = {}
        else:
            self.items: list[Node] = []
        self.merges: list[Map] | None = None
        self.key: str | None = None  # the key waiting for its value
        self.key_source: Source | None = None
        self.weight = 1


class _Builder:
    """Events in, one immutable tree out; everything bounded in one loop."""

    def __init__(self, display: str, budget: ReadBudget) -> None:
        self.display = display
        self.budget = budget
        self.sources: dict[int, Source] = {}
        self.anchors: dict[str, tuple[Node, int]] = {}
        self.scalars: dict[str, Any] = {}  # plain scalar text -> value
        self.keys: dict[str, str] = {}  # plain key text -> key
        self.timestamps = SafeConstructor()

    def at(self, line: int) -> Source:
        """One Source per line (0-based in, 1-based out)."""
        source = self.sources.get(line)
        if source is None:
            source = self.sources[line] = Source(self.display, line + 1)
        return source

    def build(self, parser: Any) -> Node:
        try:
            with collections_paused():
                return self._build(parser)
        finally:
            parser.dispose()

    def _build(self, parser: Any) -> Node:
        stack: list[_Frame] = []
        root: Node | None = None
        documents = 0
        budget = self.budget
        sources = self.sources
        scalars = self.scalars
        keys = self.keys
        at = self.at
        get_event = parser.get_event
        while True:
            event = get_event()
            kind = type(event)
            if kind is StreamEndEvent:
                break
            if kind is ScalarEvent:
                line = event.start_mark.line
                frame = stack[-1] if stack else None
                if frame is not None and frame.is_map and frame.key is None:
                    # A key: plain keys are cached as the text errors compare against.
                    key = keys.get(event.value) if event.ctag is None and event.implicit[0] \
                        else None
                    if key is None:
                        key = self._key_text(event, line)
                    source = sources.get(line) or at(line)
                    if key is not _MERGE_KEY and key in frame.entries:
                        raise PlanError(f"duplicate key '{key}'", source)
                    frame.key, frame.key_source = key, source
                    continue
                if event.ctag is None and event.implicit[0]:
                    value = scalars.get(event.value, _MISSING)
                    if value is _MISSING:
                        value = scalars[event.value] = self._resolve(event.value, line)
                    if value is _MERGE_KEY:
                        value = "<<"
                else:
                    value = self._scalar(event, line)
                node = Scalar(value, (sources.get(line) or at(line)) if stack else at(0))
                budget.nodes += 1
                if budget.nodes > budget.max_nodes:
                    self._count(0, line)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (node, 1)
                if frame is None:
                    root = node
                elif frame.is_map:
                    frame.weight += 1
                    key = frame.key
                    if key is _MERGE_KEY:
                        self._merge(frame, node, frame.key_source)
                    else:
                        frame.entries[key] = Entry(frame.key_source, node)  # type: ignore[index]
                    frame.key = frame.key_source = None
                else:
                    frame.weight += 1
                    frame.items.append(node)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                line = event.start_mark.line
                if len(stack) >= MAX_DEPTH:
                    raise PlanError(f"nesting deeper than {MAX_DEPTH} levels, the limit for a "
                                    "plan", at(line))
                if stack and stack[-1].is_map and stack[-1].key is None:
                    raise PlanError("a mapping key must be a plain value, not a "
                                    f"{'mapping' if kind is MappingStartEvent else 'list'}",
                                    at(line))
                is_map = kind is MappingStartEvent
                if event.ctag is not None:
                    self._check_container_tag(str(event.ctag), _MAP_TAG if is_map else _SEQ_TAG,
                                              line)
                budget.nodes += 1
                stack.append(_Frame(is_map, self._value_source(stack, line), event.anchor))
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                node = self._finish(frame)
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = (node, frame.weight)
                if budget.nodes > budget.max_nodes:
                    self._count(0, event.start_mark.line)
                root = self._add(stack, node, frame.weight, root)
            elif kind is AliasEvent:
                root = self._alias(stack, event, root)
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise PlanError("invalid YAML: expected a single document in the stream, "
                                    "but found another document", at(event.start_mark.line))
        self._count(0, 0)
        if root is None:
            return Scalar(None, at(0))
        return root

    def _key_text(self, event: Any, line: int) -> str:
        value = self._scalar(event, line, is_key=True)
        if value is _MERGE_KEY:
            return _MERGE_KEY
        key = key_text(value)
        if event.ctag is None and event.implicit[0]:
            self.keys[event.value] = key
        return key

    # -- values

    def _value_source(self, stack: list[_Frame], line: int) -> Source:
        """A container under a key is placed at the key (errors about it name
        it); anything else at its own line; the document at line 1."""
        if not stack:
            return self.at(0)
        parent = stack[-1]
        if parent.is_map and parent.key_source is not None:
            return parent.key_source
        return self.sources.get(line) or self.at(line)

    def _add(self, stack: list[_Frame], node: Node, weight: int, root: Node | None) -> Node | None:
        if not stack:
            return node if root is None else root
        parent = stack[-1]
        parent.weight += weight
        if not parent.is_map:
            parent.items.append(node)
            return root
        key, key_source = parent.key, parent.key_source
        parent.key = parent.key_source = None
        if key is _MERGE_KEY:
            self._merge(parent, node, key_source)
        else:
            parent.entries[key] = Entry(key_source, node)  # type: ignore[arg-type,index]
        return root

    def _finish(self, frame: _Frame) -> Node:
        if not frame.is_map:
            return Seq(tuple(frame.items), frame.source)
        entries = frame.entries
        for merged in frame.merges or ():  # explicit keys win, then earlier merges
            for key, entry in merged.entries.items():
                entries.setdefault(key, entry)
        return Map(entries, frame.source)

    def _merge(self, frame: _Frame, node: Node, source: Source | None) -> None:
        """`<<: *base` or `<<: [*a, *b]`: keys the mapping does not set itself."""
        maps = node.items if isinstance(node, Seq) else (node,)
        for item in maps:
            if not isinstance(item, Map):
                raise PlanError("'<<' (merge) takes a mapping or a list of mappings, got "
                                f"{describe(item)}", source)
            if frame.merges is None:
                frame.merges = []
            frame.merges.append(item)

    def _alias(self, stack: list[_Frame], event: Any, root: Node | None) -> Node | None:
        line = event.start_mark.line
        anchored = self.anchors.get(event.anchor)
        if anchored is None:  # pragma: no cover - the parser refuses these first
            raise PlanError(f"invalid YAML: found undefined alias '{event.anchor}'", self.at(line))
        node, weight = anchored
        budget = self.budget
        budget.alias_nodes += weight
        if budget.alias_nodes > budget.max_alias_nodes:
            raise PlanError(f"aliases expand to more than {budget.max_alias_nodes:,} values, "
                            "the limit for a plan", self.at(line),
                            "write the repeated part once, or use fewer aliases")
        self._count(weight, line)
        if stack and stack[-1].is_map and stack[-1].key is None:
            if not isinstance(node, Scalar):
                raise PlanError("a mapping key must be a plain value, not an alias to a "
                                f"{'mapping' if isinstance(node, Map) else 'list'}", self.at(line))
            frame = stack[-1]
            key = key_text(node.value)
            if key in frame.entries:
                raise PlanError(f"duplicate key '{key}'", self.at(line))
            frame.key, frame.key_source = key, self.at(line)
            return root
        if not isinstance(node, Scalar):  # a scalar keeps its line: the text is there
            node = _placed(node, self._value_source(stack, line))
        return self._add(stack, node, weight, root)

    def _count(self, count: int, line: int) -> None:
        budget = self.budget
        budget.nodes += count
        if budget.nodes > budget.max_nodes:
            raise PlanError(f"the plan holds more than {budget.max_nodes:,} values, the limit "
                            "for a plan", self.at(line), "keep large inputs in data files")

    # -- scalars

    def _scalar(self, event: Any, line: int, is_key: bool = False) -> Any:
        tag = None if event.ctag is None else str(event.ctag)
        text = event.value
        if tag is None:
            if not event.implicit[0]:
                return text  # quoted, or a block scalar: a string
            value = self.scalars.get(text, _MISSING)
            if value is _MISSING:
                value = self.scalars[text] = self._resolve(text, line)
            if value is _MERGE_KEY and not is_key:
                return text
            return value
        if tag == "!" or tag == _STR:
            return text
        if tag not in _SCALAR_TAGS:
            raise self._tag_error(tag, line)
        value = self._resolve(text, line)
        if tag == _FLOAT and _type_tag(value) == _INT:
            return float(value)
        if _type_tag(value) != tag:
            raise PlanError(f"'{text}' is not a valid {_short(tag)}", self.at(line))
        return value

    def _resolve(self, text: str, line: int) -> Any:
        tag = _STR
        for candidate, regexp in _RESOLVERS.get(text[:1], ()):
            if regexp.match(text):
                tag = candidate
                break
        if tag == _STR:
            return text
        if tag == _INT:
            return self._int(text, line)
        if tag == _FLOAT:
            return _float(text)
        if tag == _BOOL:
            return text.lower() == "true"
        if tag == _NULL:
            return None
        if tag == _MERGE:
            return _MERGE_KEY
        if tag == _TIMESTAMP:
            value = self.timestamps.construct_yaml_timestamp(ScalarNode(tag, text))
            if isinstance(value, (datetime.date, datetime.datetime)):
                return value.isoformat()
        return text  # `=` (!!value) and anything else ruamel knows: a string

    def _int(self, text: str, line: int) -> int:
        digits = text.replace("_", "")
        sign = -1 if digits.startswith("-") else 1
        digits = digits.lstrip("+-")
        base = {"0b": 2, "0o": 8, "0x": 16}.get(digits[:2].lower(), 10)
        if base != 10:
            digits = digits[2:]
        if len(digits) > 100:
            raise PlanError(f"integer with {len(digits)} digits is too long", self.at(line))
        return sign * int(digits, base)

    def _check_container_tag(self, tag: str, allowed: str, line: int) -> None:
        if tag != "!" and tag != allowed:
            raise self._tag_error(tag, line)

    def _tag_error(self, tag: str, line: int) -> PlanError:
        return PlanError(f"YAML tag '{_short(tag)}' is not allowed", self.at(line),
                         f"plans use plain YAML; the tags allowed are {_ALLOWED_TAGS}")


class _MergeKey(str):
    """The `<<` key, told apart from a quoted '<<'."""


_MERGE_KEY = _MergeKey("<<")
_MISSING = object()


def _placed(node: Map | Seq, source: Source) -> Node:
    """An aliased container at the place it is used (its contents keep their lines)."""
    if isinstance(node, Map):
        return Map(node.entries, source)
    return Seq(node.items, source)


def _float(text: str) -> float:
    lowered = text.replace("_", "").lower()
    if lowered.endswith(".inf"):
        return float("-inf") if lowered.startswith("-") else float("inf")
    if lowered.endswith(".nan"):
        return float("nan")
    return float(lowered)


def _type_tag(value: Any) -> str:
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int):
        return _INT
    if isinstance(value, float):
        return _FLOAT
    return _STR


def _short(tag: str) -> str:
    return "!!" + tag[len(_TAG_PREFIX):] if tag.startswith(_TAG_PREFIX) else tag
