"""Data sources: JSON or CSV rows read once at load time.

Reading up front means a missing or malformed file fails validation rather
than the first VU that draws a row, and the engine only ever hands out
rows that already exist.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast, get_args

from loadaction.errors import PlanError
from loadaction.plan.fields import check_keys, expect_choice, expect_map, expect_str, required
from loadaction.plan.model import DataMode, DataSource
from loadaction.plan.source import Entry, Node

DATA_MODES: tuple[str, ...] = get_args(DataMode)


def parse_data(entries: Mapping[str, Entry]) -> dict[str, DataSource]:
    """`name: {file: rows.json, mode: unique}`; paths are relative to the
    file that declares them."""
    sources = {}
    for name, entry in entries.items():
        where = f"in data '{name}'"
        node = expect_map(entry.value, f"data '{name}'")
        check_keys(node, ("file", "mode"), where)
        file_node = required(node, "file", where)
        mode_node = node.get("mode")
        mode = "sequential"
        if mode_node is not None:
            mode = expect_choice(mode_node, "mode", DATA_MODES)
        rows = _read_rows(name, file_node)
        if not rows:
            raise PlanError(f"data '{name}' has no rows (mode {mode} needs at least one)",
                            file_node.source)
        sources[name] = DataSource(name, rows, cast(DataMode, mode), entry.key_source)
    return sources


def _read_rows(name: str, node: Node) -> tuple[dict[str, Any], ...]:
    written = expect_str(node, "file")
    path = Path(os.path.dirname(node.source.file)) / written
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise PlanError(f"data '{name}': {written} must be a .json or .csv file", node.source)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlanError(f"data '{name}': cannot read {path}: {reason}", node.source) from None
    try:
        return _json_rows(text) if suffix == ".json" else _csv_rows(text)
    except ValueError as exc:
        raise PlanError(f"data '{name}': {path}: {exc}", node.source) from None


def _json_rows(text: str) -> tuple[dict[str, Any], ...]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("expected a JSON list of objects")
    return tuple(rows)


def _csv_rows(text: str) -> tuple[dict[str, Any], ...]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise ValueError("expected a CSV header row")
        rows = []
        for values in reader:
            if not values:
                continue  # blank lines, typically a trailing one
            if len(values) != len(header):
                raise ValueError(f"line {reader.line_num} has {len(values)} fields, "
                                 f"the header has {len(header)}")
            rows.append(dict(zip(header, values)))
    except csv.Error as exc:
        raise ValueError(f"invalid CSV at line {reader.line_num}: {exc}") from None
    return tuple(rows)
