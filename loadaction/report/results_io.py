"""Reading and writing results.json (docs/results-schema.md), and the few
questions every report asks of it.

The document is written once at the end of a run, possibly while the run is
being torn down by a signal, so the write is atomic: a reader (or the next
`loadaction report`) sees the old file or the new one, never half of one.
Loading checks just enough structure that the renderers can index the
document without guarding every access, and names the first thing wrong.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadaction.errors import PlanError, Source
from loadaction.metrics.sinks import SINK_TYPES, Sink

SCHEMA_VERSION = 1
VERDICTS = ("pass", "fail", "no data")

_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
}

# Top-level keys every renderer reads; the rest of the schema is optional to them.
_REQUIRED: Mapping[str, str] = {
    "plan": "object",
    "status": "string",
    "duration_s": "number",
    "scenarios": "array",
    "metrics": "object",
    "checks": "array",
    "thresholds": "array",
    "errors": "array",
}

_ITEM_FIELDS: Mapping[str, Mapping[str, str]] = {
    "scenarios": {"name": "string"},
    "checks": {"name": "string", "passes": "number", "fails": "number"},
    "thresholds": {"metric": "string", "expression": "string", "verdict": "string"},
    "errors": {"message": "string", "count": "number"},
}

# The optional `chaos` section: every list is there whenever the section is.
# A trailing `?` admits null (a fault that never started has no start time).
_CHAOS_ITEM_FIELDS: Mapping[str, Mapping[str, str]] = {
    "faults": {
        "name": "string", "kind": "string", "duration_s": "number", "planned_at_s": "number?",
        "started_at_s": "number?", "ended_at_s": "number?", "rollback": "string",
    },
    "phases": {"metric": "string", "expression": "string", "phase": "string", "verdict": "string"},
    "recovery": {
        "fault": "string", "metric": "string", "expression": "string", "within_s": "number",
        "verdict": "string", "time_to_recover_s": "number?",
    },
}
ROLLBACK_OK, ROLLBACK_NOT_NEEDED, ROLLBACK_FAILED = "ok", "not needed", "failed:"

# Summary fields per metric kind, always present / present once there is data.
_SUMMARY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "counter": ("count", "rate"),
    "rate": ("passes", "fails"),
    "gauge": ("count",),
    "trend": ("count",),
}
_FILLED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "gauge": ("value", "min", "max"),
    "trend": ("avg", "min", "med", "max", "p90", "p95", "p99"),
}


def write_results(path: Path, doc: dict[str, Any]) -> None:
    """Replace `path` with `doc` atomically and durably.

    Serialising first means a document that cannot be written (NaN, a stray
    object) fails before any file is touched. The temp file is created with
    the usual 0666-minus-umask mode, unlike mkstemp's 0600, so the results
    stay readable by whoever uploads them as a CI artifact.
    """
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_results(path: Path) -> dict[str, Any]:
    """Read a results document, raising PlanError (exit 2) naming the file and
    the first problem, so a wrong path or an old/foreign file gives one line
    instead of a KeyError deep inside a renderer."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PlanError(f"{path}: not a loadaction results document (not UTF-8 text)") from None
    except OSError as exc:
        raise PlanError(f"{path}: cannot read results: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(
            f"invalid JSON: {exc.msg} (column {exc.colno})", Source(str(path), exc.lineno)
        ) from None
    validate_results(doc, str(path))
    return doc


def validate_results(doc: object, name: str) -> None:
    """Raise PlanError unless `doc` has the structure the renderers rely on."""
    if not isinstance(doc, dict):
        raise PlanError(
            f"{name}: not a loadaction results document "
            f"(expected a JSON object, got {_json_type(doc)})"
        )
    if "schema" not in doc:
        raise PlanError(f"{name}: not a loadaction results document (missing 'schema')")
    schema = doc["schema"]
    if isinstance(schema, bool) or schema != SCHEMA_VERSION:
        raise PlanError(
            f"{name}: unsupported results schema {json.dumps(schema)} "
            f"(this loadaction reads schema {SCHEMA_VERSION})"
        )
    problem = _find_problem(doc)
    if problem:
        raise PlanError(f"{name}: invalid results document: {problem}")


def _find_problem(doc: dict[str, Any]) -> str | None:
    for key, kind in _REQUIRED.items():
        problem = _field_problem(doc, key, kind, "")
        if problem:
            return problem
    for key, fields in _ITEM_FIELDS.items():
        for index, item in enumerate(doc[key]):
            problem = _object_problem(item, fields, f"{key}[{index}]")
            if problem:
                return problem
    for index, threshold in enumerate(doc["thresholds"]):
        if threshold["verdict"] not in VERDICTS:
            return _not_one_of(f"thresholds[{index}].verdict", VERDICTS, threshold["verdict"])
    for name, metric in doc["metrics"].items():
        problem = _metric_problem(metric, f"metrics.{name}")
        if problem:
            return problem
    if doc.get("chaos") is not None:
        return _chaos_problem(doc["chaos"])
    return None


def _chaos_problem(chaos: object) -> str | None:
    problem = _object_problem(chaos, dict.fromkeys(_CHAOS_ITEM_FIELDS, "array"), "chaos")
    if problem:
        return problem
    assert isinstance(chaos, dict)
    for key, fields in _CHAOS_ITEM_FIELDS.items():
        for index, item in enumerate(chaos[key]):
            where = f"chaos.{key}[{index}]"
            problem = _object_problem(item, fields, where)
            if problem:
                return problem
            if "verdict" in fields and item["verdict"] not in VERDICTS:
                return _not_one_of(f"{where}.verdict", VERDICTS, item["verdict"])
            if key == "faults" and not _known_rollback(item["rollback"]):
                return (f"'{where}.rollback' must be \"ok\", \"not needed\" or "
                        f"\"failed: <why>\", got {json.dumps(item['rollback'])}")
    return None


def _known_rollback(rollback: str) -> bool:
    return rollback in (ROLLBACK_OK, ROLLBACK_NOT_NEEDED) or rollback.startswith(ROLLBACK_FAILED)


def _metric_problem(metric: object, where: str) -> str | None:
    problem = _object_problem(metric, {"type": "string", "total": "object"}, where)
    if problem:
        return problem
    assert isinstance(metric, dict)
    kind = metric["type"]
    if kind not in SINK_TYPES:
        return _not_one_of(f"{where}.type", SINK_TYPES, kind)
    problem = _summary_problem(metric["total"], kind, f"{where}.total")
    if problem or "by_tags" not in metric:
        return problem
    problem = _field_problem(metric, "by_tags", "array", f"{where}.")
    if problem:
        return problem
    for index, part in enumerate(metric["by_tags"]):
        part_where = f"{where}.by_tags[{index}]"
        problem = _object_problem(part, {"tags": "object", "sink": "object"}, part_where) or (
            _summary_problem(part["sink"], kind, f"{part_where}.sink")
        )
        if problem:
            return problem
    return None


def _summary_problem(summary: dict[str, Any], kind: str, where: str) -> str | None:
    fields = dict.fromkeys(_SUMMARY_FIELDS[kind], "number")
    problem = _object_problem(summary, fields, where)
    if problem or not summary.get("count"):
        return problem
    return _object_problem(summary, dict.fromkeys(_FILLED_FIELDS.get(kind, ()), "number"), where)


def _object_problem(item: object, fields: Mapping[str, str], where: str) -> str | None:
    if not isinstance(item, dict):
        return f"'{where}' must be an object, got {_json_type(item)}"
    for key, kind in fields.items():
        problem = _field_problem(item, key, kind, f"{where}.")
        if problem:
            return problem
    return None


def _field_problem(item: dict[str, Any], key: str, kind: str, prefix: str) -> str | None:
    if key not in item:
        return f"missing '{prefix}{key}'"
    value = item[key]
    base = kind.removesuffix("?")
    if value is None and base != kind:
        return None
    if isinstance(value, bool) or not isinstance(value, _JSON_TYPES[base]):
        article = "an" if base[0] in "aeiou" else "a"
        nullable = " or null" if base != kind else ""
        return f"'{prefix}{key}' must be {article} {base}{nullable}, got {_json_type(value)}"
    return None


def _not_one_of(where: str, allowed: Iterable[str], value: object) -> str:
    choices = ", ".join(map(json.dumps, allowed))
    return f"'{where}' must be one of {choices}, got {json.dumps(value)}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for name, types in _JSON_TYPES.items():
        if isinstance(value, types):
            return name
    return type(value).__name__


# ------------------------------------------------------------------ queries


def select_sink(doc: Mapping[str, Any], metric: str, tags: Mapping[str, str]) -> Sink | None:
    """Merge the tag sets of `metric` matching every pair in `tags`, as the
    engine does for sub-metric thresholds; trends merge their histograms, so
    percentiles are exact rather than averages of percentiles. None when the
    metric or no matching tag set exists."""
    entry = doc["metrics"].get(metric)
    if entry is None:
        return None
    sink_type = SINK_TYPES[entry["type"]]
    merged: Sink | None = None
    for part in entry.get("by_tags", ()):
        if all(part["tags"].get(key) == value for key, value in tags.items()):
            sink = sink_type.from_summary(part["sink"])
            if merged is None:
                merged = sink
            else:
                merged.merge(sink)  # type: ignore[arg-type]
    return merged


def is_violation(threshold: Mapping[str, Any]) -> bool:
    """`no data` fails the run unless the threshold is optional (see the schema)."""
    verdict = threshold["verdict"]
    return verdict == "fail" or (verdict == "no data" and not threshold.get("optional", False))


def chaos_faults(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The chaos faults, in the plan's order; none for a run without chaos."""
    return list((doc.get("chaos") or {}).get("faults", ()))


def recovery_budgets(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Recovery budgets gate the run like thresholds, and have no `optional`,
    so `is_violation` reads them as it reads a required threshold."""
    return list((doc.get("chaos") or {}).get("recovery", ()))


def rollback_failure(fault: Mapping[str, Any]) -> str | None:
    """Why the fault's rollback failed, None when it did not fail."""
    rollback: str = fault["rollback"]
    if not rollback.startswith(ROLLBACK_FAILED):
        return None
    return rollback.removeprefix(ROLLBACK_FAILED).strip()


def failed_rollbacks(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in chaos_faults(doc) if rollback_failure(f) is not None]


@dataclass(frozen=True, slots=True)
class Budgets:
    """How the thresholds and recovery budgets came out; `no_data` counts the
    violations that are violations only because nothing was measured."""

    total: int
    violated: int
    no_data: int


def tally_budgets(doc: Mapping[str, Any]) -> Budgets:
    """One count for every place that states it (headline, the `violations`
    output, JUnit failures), so recovery budgets are budgets too."""
    budgets = [*doc["thresholds"], *recovery_budgets(doc)]
    violated = [b for b in budgets if is_violation(b)]
    no_data = sum(1 for b in violated if b["verdict"] == "no data")
    return Budgets(len(budgets), len(violated), no_data)
