"""Which share of a sharded run a results document holds, for its reports
and its GitHub step: a shard's budgets were judged on its share of the load
only (a count budget on a quarter of the requests, a percentile on a quarter
of the samples), so its reports say so and leave the verdict to the merge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FULL_SEGMENT = "0:1"


def processes(doc: Mapping[str, Any]) -> int:
    """How many processes sent the document's load (--workers; a merge's
    shards' sum); 1 for documents from before it was recorded."""
    workers = (doc.get("execution") or {}).get("workers")
    return workers if isinstance(workers, int) and workers > 0 else 1


def shard_label(doc: Mapping[str, Any]) -> str | None:
    """`shard 2/4 (segment 1/4:1/2 of 0,1/4,1/2,3/4,1)` for one shard's
    document; None for a whole run, and for a merge (which is the whole, or
    says what it lacks)."""
    execution = doc.get("execution") or {}
    segment = execution.get("segment")
    if not isinstance(segment, str) or segment == FULL_SEGMENT or doc.get("merge"):
        return None
    sequence = str(execution.get("sequence") or "")
    points = sequence.split(",")
    start, _, end = segment.partition(":")
    if start in points and end in points and points.index(end) == points.index(start) + 1:
        return f"shard {points.index(end)}/{len(points) - 1} (segment {segment} of {sequence})"
    return f"segment {segment}" + (f" of {sequence}" if sequence else "")
