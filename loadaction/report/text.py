"""The end-of-test summary for terminals, laid out like k6's so people who
know k6 find things where they expect them. How values read is shared with
the other reports (report/format.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadaction.metrics.thresholds import format_value
from loadaction.report.capacity import capacity_lines
from loadaction.report.chaos import (
    actual_window,
    phase_table,
    planned_window,
    recovery_label,
    recovery_outcome,
    rolled_back_at,
)
from loadaction.report.document import (
    ROLLBACK_OK,
    UNMEASURED,
    chaos_faults,
    failed_rollbacks,
    is_violation,
    partial_merge,
    recovery_budgets,
    rollback_failure,
    select_sink,
    tally_budgets,
)
from loadaction.report.format import (
    FAIL,
    NOT_JUDGED,
    PASS,
    aggregation_label,
    clean,
    format_duration,
    metric_columns,
    observed_value,
    tags_label,
)
from loadaction.report.regressions import comparison_label, regression_rows
from loadaction.report.shard import processes, shard_label

_GREEN, _RED, _YELLOW, _BOLD, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[1m", "\x1b[0m"
_SUB_METRICS = ("http_req_duration", "http_req_failed")


# ----------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class _Paint:
    """ANSI colours only when asked: summaries also land in CI logs and files."""

    enabled: bool

    def __call__(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.enabled else text


def render_text(doc: Mapping[str, Any], color: bool = False) -> str:
    """The whole summary; `color` adds ANSI colours for a TTY."""
    paint = _Paint(color)
    sections = [
        _header(doc, paint),
        capacity_lines(doc),
        _scenarios(doc),
        _thresholds(doc, paint),
        _regressions(doc, paint),
        _chaos(doc, paint),
        _probes(doc, paint),
        _checks(doc, paint),
        _metrics(doc),
        _errors(doc),
        _notices(doc),
        _verdict(doc, paint),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


def _probes(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    """One line per probe: its samples and errors by kind, and the last error."""
    probes = (doc.get("probes") or {}).get("probes") or []
    if not probes:
        return []
    lines = ["  PROBES", ""]
    for probe in probes:
        if not probe.get("enabled", True):
            lines.append(f"    - {clean(probe['name'])}  {clean(probe['kind'])}  disabled (when)")
            continue
        errors = probe["errors"]
        mark = paint("✗", _RED) if errors or not probe["samples"] else paint("✓", _GREEN)
        text = (f"    {mark} {clean(probe['name'])}  {clean(probe['kind'])}  "
                f"{format_value(probe['samples'])} samples  {format_value(errors)} errors")
        if errors:
            kinds = ", ".join(f"{clean(k)} {format_value(n)}"
                              for k, n in sorted(probe["errors_by_kind"].items()))
            text += f" ({kinds}); last: {clean(probe.get('last_error') or '')}"
        lines.append(text)
    return lines


def _header(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    plan = doc["plan"]
    status = clean(doc["status"])
    if doc.get("status_reason") and doc["status"] != "complete":
        status = f"{status}: {clean(doc['status_reason'])}"
    status = paint(status, _GREEN if doc["status"] == "complete" else _YELLOW)
    tool = doc.get("tool") or {}
    name = clean(plan["name"])
    if plan.get("file"):
        name = f"{name} ({clean(plan['file'])})"
    fields = [
        ("plan", name),
        ("profile", clean(plan.get("profile") or "-")),
        ("target", clean(plan.get("target") or "-")),
        ("status", status),
        ("duration", format_duration(doc["duration_s"] * 1000)),
    ]
    if (count := processes(doc)) > 1:
        fields.append(("processes", f"{count}, their samples merged exactly"))
    if (shard := shard_label(doc)) is not None:
        fields.append(("share", f"{clean(shard)}: budgets judged on this share only; "
                                f"loadaction merge judges the run"))
    title = paint(f"loadaction {clean(tool.get('version', ''))}".rstrip(), _BOLD)
    return [f"  {title}", ""] + [f"  {_dotted(label, 10)}: {value}" for label, value in fields]


def _scenarios(doc: Mapping[str, Any]) -> list[str]:
    rows = [
        [
            clean(s["name"]),
            clean(s.get("executor", "")),
            f"{format_value(s.get('iterations', 0))} iterations",
            f"{format_value(s.get('interrupted_iterations', 0))} interrupted",
            f"{format_value(s.get('dropped_iterations', 0))} dropped",
            f"{format_value(s.get('vus_max', 0))} max VUs",
        ]
        for s in doc["scenarios"]
    ]
    return ["  SCENARIOS", ""] + [f"    {line}" for line in _columns(rows)] if rows else []


def _thresholds(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    lines = []
    for t in doc["thresholds"]:
        value = observed_value(doc, t)
        if t["verdict"] == "pass":
            mark = paint(PASS, _GREEN)
        elif is_violation(t):
            mark = paint(FAIL, _RED)
        else:
            mark = paint("-", _YELLOW)
        label = aggregation_label(t["expression"])
        outcome = "no data" if value is None else f"observed {label}={value}"
        if t["verdict"] == "insufficient data":
            outcome += (f" — insufficient data: {t.get('samples')} sample(s), "
                        f"{t.get('min_samples')} needed")
        if t["verdict"] in UNMEASURED and t.get("optional"):
            outcome += " (optional)"
        lines.append(f"    {mark} {clean(t['metric'])}  {clean(t['expression'])}  {outcome}")
    return ["  THRESHOLDS", ""] + lines if lines else []


def _regressions(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    rows = regression_rows(doc)
    if not rows:
        return []
    lines = []
    for row in rows:
        mark = (paint(FAIL, _RED) if row.failed
                else paint(PASS, _GREEN) if row.verdict in ("no evidence", "improved")
                else paint("-", _YELLOW))
        values = f"{row.baseline or '-'} -> {row.value or '-'}" + (f" ({row.change})" if row.change else "")
        lines.append(f"    {mark} {clean(row.metric)}  {clean(row.expression)}  {values}  "
                     f"{row.verdict}: {clean(row.reason)}")
    return [f"  REGRESSIONS against {clean(comparison_label(doc) or 'the baseline')}", ""] + lines


def _chaos(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    """Faults, recovery budgets and thresholds by phase, each part only when
    the document has it."""
    if doc.get("chaos") is None:
        return []
    parts = [_fault_lines(doc, paint), _recovery_lines(doc, paint), _phase_lines(doc)]
    lines = ["  CHAOS"]
    for part in parts:
        if part:
            lines += ["", *part]
    return lines


def _fault_lines(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    rows = []
    for fault in chaos_faults(doc):
        ran = actual_window(fault)
        outcome = _rollback_text(fault, paint)
        if fault.get("start_error"):
            outcome = f"start failed: {clean(fault['start_error'])}; {outcome}"
        rows.append([
            clean(fault["name"]),
            clean(fault["kind"]),
            f"planned {clean(planned_window(fault))}",
            f"ran {ran}" if ran else "not started",
            outcome,
        ])
    return [f"    {line}" for line in _columns(rows)]


def _rollback_text(fault: Mapping[str, Any], paint: _Paint) -> str:
    """A fault left in place breaks the target for everyone after this run,
    so a failed rollback is the loudest line of the summary."""
    why = rollback_failure(fault)
    if why is None:
        moment = rolled_back_at(fault) if fault["rollback"] == ROLLBACK_OK else None
        return f"rollback {clean(fault['rollback'])}" + (f" at {moment}" if moment else "")
    return paint(f"rollback FAILED: {clean(why)}", _BOLD + _RED)


def _recovery_lines(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    lines = []
    for budget in recovery_budgets(doc):
        mark = paint(FAIL, _RED) if is_violation(budget) else paint(PASS, _GREEN)
        lines.append(f"    {mark} {clean(recovery_label(budget))} — {recovery_outcome(budget)}")
    return lines


def _phase_lines(doc: Mapping[str, Any]) -> list[str]:
    """Uncoloured: colour codes would throw the columns out of line, and the
    marks already say it."""
    table = phase_table(doc)
    if not table.rows:
        return []
    header = ["threshold", *map(clean, table.phases)]
    rows = [
        [f"{clean(row.metric)} {clean(row.expression)}",
         *(_phase_cell(doc, cell) for cell in row.cells)]
        for row in table.rows
    ]
    return [f"    {line}" for line in _columns([header, *rows])]


def _phase_cell(doc: Mapping[str, Any], cell: Mapping[str, Any] | None) -> str:
    if cell is None or cell["verdict"] == "no data":
        return NOT_JUDGED
    mark = PASS if cell["verdict"] == "pass" else FAIL
    value = observed_value(doc, cell)
    return f"{mark} {value}" if value is not None else mark


def _checks(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    many_scenarios = len({c.get("scenario") for c in doc["checks"]}) > 1
    lines = []
    for check in doc["checks"]:
        passes, fails = check["passes"], check["fails"]
        total = passes + fails
        mark = paint(PASS, _GREEN) if fails == 0 else paint(FAIL, _RED)
        share = f"{format_value(passes / total * 100)}%" if total else "no data"
        counts = f"{PASS} {format_value(passes)} {FAIL} {format_value(fails)}"
        line = f"    {mark} {clean(check['name'])}  {share} — {counts}"
        where = {}
        if many_scenarios and check.get("scenario"):
            where["scenario"] = check["scenario"]
        if check.get("group"):
            where["group"] = check["group"]
        lines.append(f"{line}  {tags_label(where)}" if where else line)
    return ["  CHECKS", ""] + lines if lines else []


def _metrics(doc: Mapping[str, Any]) -> list[str]:
    """k6's dotted metric list, with per-scenario sub-metrics under the two
    metrics budgets are most often set on. Trend lines align among
    themselves, the others among themselves, as in k6."""
    rows: list[tuple[str, str, list[str]]] = []
    for name in sorted(doc["metrics"]):
        metric = doc["metrics"][name]
        columns = metric_columns(metric, metric["total"], doc["duration_s"])
        if columns is None:
            continue
        rows.append((clean(name), metric["type"], columns))
        if name in _SUB_METRICS:
            rows.extend(_sub_metric_rows(doc, name))
    if not rows:
        return []
    width = max(len(label) for label, _, _ in rows) + 3
    aligned = [""] * len(rows)
    for trends in (True, False):
        indexes = [i for i, (_, kind, _) in enumerate(rows) if (kind == "trend") == trends]
        for i, line in zip(indexes, _columns([rows[i][2] for i in indexes])):
            aligned[i] = line
    return ["  METRICS", ""] + [
        f"    {_dotted(label, width)}: {line}" for (label, _, _), line in zip(rows, aligned)
    ]


def _sub_metric_rows(doc: Mapping[str, Any], name: str) -> list[tuple[str, str, list[str]]]:
    metric = doc["metrics"][name]
    rows = []
    for scenario in doc["scenarios"]:
        sink = select_sink(doc, name, {"scenario": scenario["name"]})
        if sink is None:
            continue
        columns = metric_columns(metric, sink.summary(doc["duration_s"]), doc["duration_s"])
        if columns is not None:
            label = f"  {tags_label({'scenario': scenario['name']})}"
            rows.append((label, metric["type"], columns))
    return rows



def _errors(doc: Mapping[str, Any]) -> list[str]:
    errors = sorted(doc["errors"], key=lambda e: -e["count"])
    rows = []
    for error in errors:
        where = [clean(error["scenario"])] if error.get("scenario") else []
        if error.get("first_seen_s") is not None:
            where.append(f"first at {format_duration(error['first_seen_s'] * 1000)}")
        suffix = f"  ({', '.join(where)})" if where else ""
        rows.append([format_value(error["count"]), f"{clean(error['message'])}{suffix}"])
    return ["  ERRORS", ""] + [f"    {line}" for line in _columns(rows, right=True)] if rows else []


def _notices(doc: Mapping[str, Any]) -> list[str]:
    notices = doc.get("notices") or []
    return ["  NOTICES", ""] + [f"    {clean(n)}" for n in notices] if notices else []


def _verdict(doc: Mapping[str, Any], paint: _Paint) -> list[str]:
    """The budgets' verdict, then any fault left in place: budgets holding
    says nothing about a target a fault still degrades."""
    partial = partial_merge(doc)
    return [_budget_verdict(doc, paint), *(
        "  " + paint(f"{FAIL} fault {clean(f['name'])} NOT rolled back: the target may still be "
                     "degraded", _BOLD + _RED)
        for f in failed_rollbacks(doc)
    ), *([f"  {paint(clean(partial), _YELLOW)}"] if partial else [])]


def _budget_verdict(doc: Mapping[str, Any], paint: _Paint) -> str:
    budgets = tally_budgets(doc)
    if not budgets.total:
        return "  no budgets defined"
    if not budgets.violated:
        return f"  {paint(f'{PASS} all budgets held', _GREEN)}"
    text = f"{FAIL} {budgets.violated} budget(s) violated"
    if budgets.no_data == budgets.violated:
        text += " (no data)"
    elif budgets.no_data:
        text += f" ({budgets.no_data} with no data)"
    if budgets.insufficient == budgets.violated:
        text += " (too few samples)"
    elif budgets.insufficient:
        text += f" ({budgets.insufficient} with too few samples)"
    return f"  {paint(text, _RED)}"


# ------------------------------------------------------------------ layout


def _dotted(label: str, width: int) -> str:
    return label + "." * max(width - len(label), 0)


def _columns(rows: Sequence[Sequence[str]], right: bool = False) -> list[str]:
    """Pad each column to its widest cell (the first right-aligned if asked);
    rows may differ in length, as trend and counter lines do."""
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell))
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if right and i == 0 else cell.ljust(widths[i])
            for i, cell in enumerate(row[:-1])
        ]
        lines.append("  ".join([*cells, row[-1]]))
    return lines
