"""Typed reads of YAML nodes that fail as one PlanError at the value's line.

Every parser goes through these, so messages read the same everywhere:
`vus: expected an integer, got 'ten'`.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from loadaction.errors import PlanError, did_you_mean
from loadaction.plan.durations import parse_duration
from loadaction.plan.limits import duration_problem
from loadaction.plan.source import Entry, Map, Node, Scalar, Seq, describe


def expect_map(node: Node, what: str) -> Map:
    if not isinstance(node, Map):
        raise PlanError(f"{what}: expected a mapping, got {describe(node)}", node.source)
    return node


def expect_seq(node: Node, what: str) -> Seq:
    if not isinstance(node, Seq):
        raise PlanError(f"{what}: expected a list, got {describe(node)}", node.source)
    return node


def expect_str(node: Node, what: str) -> str:
    """A non-empty string; numbers are not silently turned into names."""
    if not isinstance(node, Scalar) or not isinstance(node.value, str):
        raise PlanError(f"{what}: expected a string, got {describe(node)}", node.source)
    if not node.value.strip():
        raise PlanError(f"{what}: must not be empty", node.source)
    return node.value


def expect_text(node: Node, what: str) -> str:
    """A scalar used as text (header and tag values, bodies): `42` is fine, null is not."""
    if not isinstance(node, Scalar) or node.value is None or isinstance(node.value, bool):
        raise PlanError(f"{what}: expected a string, got {describe(node)}", node.source)
    return str(node.value)


def expect_bool(node: Node, what: str) -> bool:
    if not isinstance(node, Scalar) or not isinstance(node.value, bool):
        raise PlanError(f"{what}: expected true or false, got {describe(node)}", node.source)
    return node.value


def expect_int(node: Node, what: str, minimum: int = 0) -> int:
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PlanError(f"{what}: expected an integer, got {describe(node)}", node.source)
    if value < minimum:
        raise PlanError(f"{what}: {_minimum_text(minimum)}, got {value}", node.source)
    return value


def expect_number(node: Node, what: str, *, positive: bool = False) -> float:
    """A non-negative number; `positive` also refuses zero."""
    value = node.value if isinstance(node, Scalar) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise PlanError(f"{what}: expected a number, got {describe(node)}", node.source)
    if value < 0 or (positive and value == 0):
        rule = "must be greater than 0" if positive else "must not be negative"
        raise PlanError(f"{what}: {rule}, got {value:g}", node.source)
    return float(value)


def expect_duration(node: Node, what: str, *, positive: bool = False) -> float:
    value = node.value if isinstance(node, Scalar) else None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise PlanError(f"{what}: expected a duration, got {describe(node)}", node.source)
    if not isinstance(value, str) and value < 0:
        raise PlanError(f"{what}: must not be negative, got {value:g}", node.source)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise PlanError(f"{what}: {exc}", node.source) from None
    if positive and seconds == 0:
        raise PlanError(f"{what}: must be longer than 0s", node.source)
    problem = duration_problem(seconds)
    if problem is not None:
        raise PlanError(f"{what}: {problem}", node.source)
    return seconds


def expect_choice(node: Node, what: str, choices: Collection[str]) -> str:
    value = expect_str(node, what)
    if value not in choices:
        listed = ", ".join(choices)
        raise PlanError(f"{what}: unknown value '{value}' (expected one of: {listed})",
                        node.source, did_you_mean(value, choices))
    return value


def check_keys(node: Map, allowed: Collection[str], where: str) -> None:
    """Refuse keys outside `allowed`, suggesting the closest one."""
    for key, entry in node.items():
        if key not in allowed:
            raise PlanError(f"unknown key '{key}' {where}", entry.key_source,
                            did_you_mean(key, allowed))


def required(node: Map, key: str, where: str) -> Node:
    value = node.get(key)
    if value is None:
        raise PlanError(f"missing required key '{key}' {where}", node.source)
    return value


def single_entry(node: Node, what: str) -> tuple[str, Entry]:
    """The one key of a `- kind: {...}` list item."""
    mapping = expect_map(node, what)
    if len(mapping.entries) != 1:
        keys = ", ".join(f"'{key}'" for key in mapping.entries) or "none"
        raise PlanError(f"{what}: expected a mapping with exactly one key, got {keys}",
                        node.source)
    return next(mapping.items())


def string_pairs(node: Node, what: str) -> tuple[tuple[str, str], ...]:
    """Tags: a mapping of names to text, sorted so equal tag sets compare equal."""
    mapping = expect_map(node, what)
    return tuple(sorted(
        (key, expect_text(entry.value, f"{what}.{key}")) for key, entry in mapping.items()
    ))


def _minimum_text(minimum: int) -> str:
    return "must not be negative" if minimum == 0 else f"must be at least {minimum}"
