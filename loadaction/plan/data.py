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
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast, get_args

from loadaction.errors import PlanError
from loadaction.plan.fields import check_keys, expect_choice, expect_map, expect_str, required
from loadaction.plan.inputs import PlanInputs
from loadaction.plan.model import DataMode, DataSource
from loadaction.plan.segments import Execution
from loadaction.plan.source import Entry, Node, format_bytes

DATA_MODES: tuple[str, ...] = get_args(DataMode)
MAX_DATA_BYTES = 256 << 20
"""A data file is read whole and held for the run: 256 MiB is millions of rows."""


def parse_data(entries: Mapping[str, Entry], inputs: PlanInputs) -> dict[str, DataSource]:
    """`name: {file: rows.json, mode: unique}`; paths are relative to the
    file that declares them. Each file read is recorded in `inputs` (the
    plan's identity covers its data)."""
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
        rows = _read_rows(name, file_node, inputs)
        if not rows:
            raise PlanError(f"data '{name}' has no rows (mode {mode} needs at least one)",
                            file_node.source)
        sources[name] = DataSource(name, rows, cast(DataMode, mode), entry.key_source)
    return sources


def segment_rows(source: DataSource, execution: Execution) -> tuple[Mapping[str, Any], ...]:
    """The rows this segment may draw: in `unique` mode its striped share
    (row i is the segment's that owns index i), so the segments of a sequence
    hand out every row exactly once between them; the other modes reuse rows
    anyway, so every segment reads them all."""
    if source.mode != "unique" or execution.is_full:
        return source.rows
    return tuple(row for i, row in enumerate(source.rows) if execution.owns(i))


def _read_rows(name: str, node: Node, inputs: PlanInputs) -> tuple[dict[str, Any], ...]:
    written = expect_str(node, "file")
    path = Path(os.path.dirname(node.source.file)) / written
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise PlanError(f"data '{name}': {written} must be a .json or .csv file", node.source)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "Is a directory" if stat.S_ISDIR(info.st_mode)
                          else "not a regular file")
        if info.st_size > MAX_DATA_BYTES:
            raise PlanError(f"data '{name}': {path} is larger than "
                            f"{format_bytes(MAX_DATA_BYTES)} ({format_bytes(info.st_size)}), "
                            "the size limit for a data file", node.source,
                            "split it, or draw fewer rows") from None
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PlanError(f"data '{name}': cannot read {path}: {reason}", node.source) from None
    inputs.record(str(path), data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PlanError(f"data '{name}': {path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} "
                        f"in line {line})", node.source) from None
    try:
        return _json_rows(text) if suffix == ".json" else _csv_rows(text)
    except ValueError as exc:
        raise PlanError(f"data '{name}': {path}: {exc}", node.source) from None


def _json_rows(text: str) -> tuple[dict[str, Any], ...]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
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
