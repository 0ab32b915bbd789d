"""Data feeders: which row an iteration gets from each data source.

`unique` hands each row out once across all VUs of the run (like k6's
SharedArray indexed per VU and iteration), and, with execution segments,
once across all the segments (each draws its striped share); running out is
an outcome the engine reports ("data exhausted"), never a crash.

`sequential` hands rows out in order, starting over at the end. With
execution segments (shards, workers) a segment's n-th draw is the whole
test's draw its striping numbers (the global index of n), so processes
running side by side take different rows, as one process's VUs do, instead
of each starting at the first row.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from loadaction.plan.data import segment_rows
from loadaction.plan.model import DataSource
from loadaction.plan.segments import FULL_TUPLE, Execution


class DataExhausted(Exception):
    def __init__(self, source: str, rows: int):
        super().__init__(f"data '{source}' exhausted after {rows} rows")
        self.source = source


class Feeder:
    __slots__ = ("spec", "_rows", "_next", "_rng", "_striped")

    def __init__(self, spec: DataSource, rng: random.Random,
                 execution: Execution = FULL_TUPLE) -> None:
        self.spec = spec
        self._rows = segment_rows(spec, execution)
        self._next = 0
        self._rng = rng
        self._striped = None if execution.is_full or spec.mode != "sequential" else execution

    def draw(self) -> Mapping[str, Any]:
        rows = self._rows
        mode = self.spec.mode
        if mode == "random":
            return self._rng.choice(rows)
        i = self._next
        if mode == "unique" and i >= len(rows):
            raise DataExhausted(self.spec.name, len(rows))
        self._next = i + 1
        if self._striped is not None:
            i = self._striped.global_index(i)
        return rows[i % len(rows)]


class IterationData:
    """`data` in templates: draws a source's row the first time an iteration
    reads it, so iterations only consume the sources they use."""

    __slots__ = ("_feeders", "_rows")

    def __init__(self, feeders: Mapping[str, Feeder]) -> None:
        self._feeders = feeders
        self._rows: dict[str, Mapping[str, Any]] = {}

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        row = self._rows.get(name)
        if row is None:
            row = self._rows[name] = self._feeders[name].draw()
        return row

    def __getattr__(self, name: str) -> Mapping[str, Any]:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
