"""What a channel's `config.postgres_changes` asks for, and whether a change
is what it asked for.

Two kinds of wrong, answered as Realtime answers them. A join payload of the
wrong shape is refused by the join's reply (status "error"). A well-formed
subscription that cannot be served (no such table in the publication, a
filter that does not parse) still joins, and the `system` message that
follows says why nothing will arrive, with Realtime's own wording.

The rules are Realtime's (Extensions.PostgresCdcRls.Subscriptions):
`schema` and `table`, or one alone (`schema` alone means all its tables,
`table` alone means schema `public`, `*` matches any); `event` `*` (the
default) or INSERT, UPDATE, DELETE in any case; `filter` PostgREST-style,
`column=operator.value`, several joined by commas all having to hold. Of
Realtime's operators the demo has `eq`, `neq` and `in` (`in.(a,b)`); any
other is refused. Unlike Realtime, which reads an unknown `event` as `*`,
the demo refuses it too: a typo there should be loud. Values compare as
text, as the filter's value is written; NULL matches nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loadaction.demo.faults import Invalid
from loadaction.demo.realtime.changes import PUBLISHED, SCHEMA, Change, ChangeKind

_FIELDS = ("event", "schema", "table", "filter")
_OPERATORS = ("eq", "neq", "in")
_PHASH2_RANGE = 2**27  # the range of Erlang's phash2, which Realtime's ids come from


@dataclass(frozen=True, slots=True)
class JoinRequest:
    postgres_changes: tuple[Mapping[str, Any], ...]  # as the client sent them


def parse_join(payload: Any) -> JoinRequest | Invalid:
    """The shape of a phx_join payload; other config (broadcast, presence,
    private) and the access_token are accepted and not used."""
    if not isinstance(payload, dict):
        return Invalid("payload: unable to parse, expected a map")
    config = payload.get("config")
    if config is None:
        return JoinRequest(())
    if not isinstance(config, dict):
        return Invalid("config: unable to parse, expected a map")
    changes = config.get("postgres_changes")
    if changes is None:
        return JoinRequest(())
    if not isinstance(changes, list):
        return Invalid("config.postgres_changes: unable to parse, expected an array of maps")
    kept = []
    for i, entry in enumerate(changes):
        if entry is None:  # Realtime drops nulls
            continue
        if not isinstance(entry, dict):
            return Invalid(f"config.postgres_changes[{i}]: unable to parse, expected a map")
        for key in _FIELDS:
            if key in entry and not isinstance(entry[key], str):
                return Invalid(f"config.postgres_changes[{i}].{key}: unable to parse, expected string")
        kept.append(entry)
    return JoinRequest(tuple(kept))


def binding_id(params: Mapping[str, Any]) -> int:
    """Realtime numbers a subscription by a hash of its parameters
    (`:erlang.phash2(params)`), so the same subscription always gets the same
    id. This is a different hash in the same range, never 0 (realtime-js
    tests an id for truth)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.blake2b(canonical.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (_PHASH2_RANGE - 1) + 1


@dataclass(frozen=True, slots=True)
class Condition:
    column: str
    values: frozenset[str]
    negated: bool  # neq

    def holds(self, row: Mapping[str, Any]) -> bool:
        value = row.get(self.column)
        if value is None:
            return False
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return (text in self.values) != self.negated


@dataclass(frozen=True, slots=True)
class Binding:
    id: int
    event: ChangeKind | None  # None: every kind
    schema: str               # "*": any
    table: str                # "*": any
    conditions: tuple[Condition, ...]

    def matches(self, change: Change) -> bool:
        return (self.event in (None, change.kind) and self.schema in ("*", change.schema)
                and self.table in ("*", change.table.name)
                and all(c.holds(change.row) for c in self.conditions))


def _split(text: str) -> list[str]:
    """Commas separate conditions, except inside parentheses or double quotes."""
    parts, current, depth, quoted = [], "", 0, False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return parts


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _condition(text: str) -> Condition | Invalid:
    column, eq, rest = text.partition("=")
    operator, dot, operand = rest.partition(".")
    problem = f"Error parsing `filter` params: {text.strip()!r}"
    if not eq or not dot or not column.strip():
        return Invalid(f"{problem}: expected column=operator.value")
    if operator not in _OPERATORS:
        return Invalid(f"{problem}: the demo supports the operators {', '.join(_OPERATORS)}")
    if operator == "in":
        if not (operand.startswith("(") and operand.endswith(")")):
            return Invalid(f"{problem}: in takes a list, in.(a,b)")
        values = frozenset(_unquote(v.strip()) for v in _split(operand[1:-1]))
    else:
        values = frozenset({_unquote(operand)})
    return Condition(column.strip(), values, negated=operator == "neq")


def _describe(params: Mapping[str, Any]) -> str:
    """Realtime's way of quoting the parameters back in its messages."""
    shown = {key: params.get(key, "*") for key in ("event", "schema", "table")}
    return (f"[event: {shown['event']}, schema: {shown['schema']}, table: {shown['table']}, "
            f"filters: {params.get('filter', '[]')}]")


def _binding(params: Mapping[str, Any]) -> Binding | Invalid:
    event_name = params.get("event", "*")
    if event_name == "*":
        event = None
    elif event_name.upper() in ChangeKind.__members__:
        event = ChangeKind(event_name.upper())
    else:
        return Invalid(f"Error parsing `event` params: {event_name!r}; expected *, INSERT, UPDATE "
                       "or DELETE")
    schema, table = params.get("schema"), params.get("table")
    if "filter" in params and (schema is None or table is None):
        schema = table = None  # Realtime takes a filter only with both
    if schema is None and table is None:
        shown = {k: v for k, v in params.items() if k not in ("access_token", "user_token")}
        return Invalid("No subscription params provided. Please provide at least a `schema` or "
                       f"`table` to subscribe to: {shown}")
    schema = SCHEMA if schema is None else schema
    table = "*" if table is None else table
    filter_text = params.get("filter", "").strip()
    conditions = []
    for part in _split(filter_text) if filter_text else []:
        condition = _condition(part)
        if isinstance(condition, Invalid):
            return condition
        conditions.append(condition)
    tables = [t for t in PUBLISHED if schema in ("*", SCHEMA) and table in ("*", t.name)]
    if not tables:
        return Invalid("Unable to subscribe to changes with given parameters. Please check "
                       f"Realtime is enabled for the given connect parameters: {_describe(params)}")
    for t in tables:
        unknown = [c.column for c in conditions if not t.has_column(c.column)]
        if unknown:
            return Invalid("Unable to subscribe to changes with given parameters. An exception "
                           "happened so please check your connect parameters: "
                           f"{_describe(params)}. Exception: invalid column for filter {unknown[0]}")
    return Binding(binding_id(params), event, schema, table, tuple(conditions))


def subscribe(requested: Iterable[Mapping[str, Any]]) -> tuple[Binding, ...] | Invalid:
    """All of a join's subscriptions or none, as Realtime creates them in one transaction."""
    bindings = []
    for params in requested:
        binding = _binding(params)
        if isinstance(binding, Invalid):
            return binding
        bindings.append(binding)
    return tuple(bindings)
