"""JUnit XML, so the test reporters CI systems already have (GitHub test
reporter actions, GitLab, Jenkins) list budgets and checks as test cases.

One <testsuite> per scenario holds the thresholds filtered on that scenario,
one more holds the plan-wide thresholds, a `chaos` suite holds the recovery
budgets and the rollbacks of the faults that needed one (with the
faults' planned and actual windows), and a `checks`
suite holds the checks. Reporters group and annotate by suite, classname,
file and line, so every threshold, recovery budget and rollback case
carries the plan file and line it came from.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from loadaction.metrics.thresholds import format_value
from loadaction.report.chaos import recovery_label, recovery_outcome, windows_text
from loadaction.report.document import (
    ROLLBACK_NOT_NEEDED,
    chaos_faults,
    is_violation,
    recovery_budgets,
    rollback_failure,
)
from loadaction.report.format import (
    aggregation_label,
    format_percent,
    observed_value,
    threshold_metric,
)
from loadaction.report.regressions import regression_rows

PLAN_WIDE = "all"
CHAOS = "chaos"
REGRESSIONS = "regressions"
_COUNTS = ("tests", "failures", "errors", "skipped")
# XML 1.0 cannot carry most control characters, even as references; a
# server's error text could hold any of them.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_junit(doc: Mapping[str, Any]) -> str:
    """The whole document, with an XML declaration; a run that did not
    complete adds a failing `run completed` case, so a cancelled run whose
    budgets held so far does not read as green. Suites without cases are
    left out."""
    suites = [
        s for s in (*_threshold_suites(doc), _regression_suite(doc), _chaos_suite(doc),
                    _checks_suite(doc)) if len(s)
    ]
    root = ET.Element("testsuites", name=_text(f"loadaction {doc['plan'].get('name', '')}"))
    for key in _COUNTS:
        root.set(key, str(sum(int(suite.get(key, "0")) for suite in suites)))
    root.set("time", format_value(doc["duration_s"]))
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _threshold_suites(doc: Mapping[str, Any]) -> list[ET.Element]:
    """Scenarios in the document's order, then any scenario a threshold
    names that did not run, then the plan-wide thresholds."""
    by_scenario: dict[str, list[Mapping[str, Any]]] = {s["name"]: [] for s in doc["scenarios"]}
    plan_wide: list[Mapping[str, Any]] = []
    for threshold in doc["thresholds"]:
        _, tags = threshold_metric(threshold["metric"])
        scenario = tags.get("scenario")
        if scenario is None:
            plan_wide.append(threshold)
        else:
            by_scenario.setdefault(scenario, []).append(threshold)
    suites = []
    for scenario, thresholds in by_scenario.items():
        cases = [_threshold_case(doc, t, scenario) for t in thresholds]
        suites.append(_suite(doc, scenario, cases))
    cases = [_threshold_case(doc, t, PLAN_WIDE) for t in plan_wide]
    run_case = _run_case(doc)
    if run_case is not None:
        cases.append(run_case)
    suites.append(_suite(doc, PLAN_WIDE, cases))
    return suites


def _threshold_case(
    doc: Mapping[str, Any], threshold: Mapping[str, Any], scenario: str
) -> ET.Element:
    name = f"{threshold['metric']} {threshold['expression']}"
    case = _case(name, f"loadaction.{scenario}")
    source = _set_source(case, threshold)
    value = observed_value(doc, threshold)
    observed = f"observed {aggregation_label(threshold['expression'])}={value}"
    where = _where(source)
    if threshold["verdict"] == "pass":
        _child(case, "system-out", text=f"{name}: {observed}")
    elif threshold["verdict"] == "fail":
        detail = f"{name}: {observed}{where}"
        _child(case, "failure", message=observed, type="threshold", text=detail)
    elif threshold["verdict"] == "insufficient data":
        detail = (f"{name}: insufficient data: {threshold.get('samples')} sample(s), "
                  f"{threshold.get('min_samples')} needed{where}")
        if is_violation(threshold):
            _child(case, "failure", message="insufficient data", type="insufficient data",
                   text=detail)
        else:
            _child(case, "skipped", message="insufficient data (optional)")
    elif is_violation(threshold):
        detail = f"{name}: no data: the metric got no samples{where}"
        _child(case, "failure", message="no data", type="no data", text=detail)
    else:
        _child(case, "skipped", message="no data (optional)")
    return case


def _set_source(case: ET.Element, item: Mapping[str, Any]) -> Mapping[str, Any]:
    """Point the case at the plan line `item` came from; returns the source."""
    source: Mapping[str, Any] = item.get("source") or {}
    if source.get("file"):
        case.set("file", _text(source["file"]))
    if source.get("line") is not None:
        case.set("line", _text(source["line"]))
    return source


def _where(source: Mapping[str, Any]) -> str:
    return f" ({source['file']}:{source.get('line')})" if source.get("file") else ""


def _regression_suite(doc: Mapping[str, Any]) -> ET.Element:
    """One case per regression budget: a failure when it regressed (or had
    too little data and is required), skipped when there was too little."""
    cases = []
    for row in regression_rows(doc):
        name = f"{row.metric} {row.expression}"
        case = _case(name, f"loadaction.{REGRESSIONS}")
        where = _where(_set_source(case, {"source": row.source}))
        detail = f"{name}: {row.baseline or '-'} -> {row.value or '-'}" + (
            f" ({row.change})" if row.change else "") + f": {row.reason}{where}"
        if row.failed:
            _child(case, "failure", message=row.verdict, type="regression", text=detail)
        elif row.verdict == "insufficient data":
            _child(case, "skipped", message=f"insufficient data: {row.reason}")
        else:
            _child(case, "system-out", text=detail)
        cases.append(case)
    return _suite(doc, REGRESSIONS, cases)


def _chaos_suite(doc: Mapping[str, Any]) -> ET.Element:
    """Recovery budgets, then rollbacks. A fault that needed no rollback (a
    client-side fault, or one that never started) has no case: there was
    nothing to test."""
    cases = [_recovery_case(budget) for budget in recovery_budgets(doc)]
    cases += [
        _rollback_case(fault) for fault in chaos_faults(doc)
        if fault["rollback"] != ROLLBACK_NOT_NEEDED
    ]
    return _suite(doc, CHAOS, cases)


def _recovery_case(budget: Mapping[str, Any]) -> ET.Element:
    name = recovery_label(budget)
    case = _case(name, f"loadaction.{CHAOS}")
    where = _where(_set_source(case, budget))
    outcome = recovery_outcome(budget)
    if is_violation(budget):
        detail = f"{name}: {outcome}{where}"
        _child(case, "failure", message=outcome, type="recovery", text=detail)
    else:
        _child(case, "system-out", text=f"{name}: {outcome}")
    return case


def _rollback_case(fault: Mapping[str, Any]) -> ET.Element:
    case = _case(f"rollback {fault['name']}", f"loadaction.{CHAOS}")
    where = _where(_set_source(case, fault))
    why = rollback_failure(fault)
    windows = windows_text(fault)
    if why is None:
        _child(case, "system-out",
               text=f"fault {fault['name']} ({fault['kind']}) rolled back; {windows}")
    else:
        detail = (f"fault {fault['name']} ({fault['kind']}) was not rolled back: {why}; "
                  f"{windows}{where}")
        _child(case, "failure", message=f"not rolled back: {why}", type="rollback", text=detail)
    return case


def _run_case(doc: Mapping[str, Any]) -> ET.Element | None:
    if doc["status"] == "complete":
        return None
    case = _case("run completed", f"loadaction.{PLAN_WIDE}")
    reason = doc.get("status_reason")
    message = f"run {doc['status']}" + (f": {reason}" if reason else "")
    _child(case, "failure", message=message, type="status")
    return case


def _checks_suite(doc: Mapping[str, Any]) -> ET.Element:
    cases = []
    for check in doc["checks"]:
        scenario = check.get("scenario") or PLAN_WIDE
        group = check.get("group") or ""
        name = f"{group}::{check['name']}" if group else check["name"]
        case = _case(name, f"loadaction.{scenario}")
        passes, fails = check["passes"], check["fails"]
        total = passes + fails
        share = f" ({format_percent(fails / total)})" if total else ""
        summary = f"{format_value(fails)} of {format_value(total)} failed{share}"
        if fails:
            _child(case, "failure", message=summary, type="check")
        else:
            _child(case, "system-out", text=summary)
        cases.append(case)
    return _suite(doc, "checks", cases)


def _suite(doc: Mapping[str, Any], name: str, cases: list[ET.Element]) -> ET.Element:
    suite = ET.Element("testsuite", name=_text(name))
    counts = {
        "tests": len(cases),
        "failures": sum(1 for case in cases if case.find("failure") is not None),
        "errors": 0,
        "skipped": sum(1 for case in cases if case.find("skipped") is not None),
    }
    for key in _COUNTS:
        suite.set(key, str(counts[key]))
    suite.set("time", "0")
    if doc.get("started_at"):
        suite.set("timestamp", _text(doc["started_at"]))
    suite.extend(cases)
    return suite


def _case(name: str, classname: str) -> ET.Element:
    return ET.Element("testcase", name=_text(name), classname=_text(classname), time="0")


def _child(parent: ET.Element, tag: str, *, text: str | None = None, **attributes: str) -> None:
    element = ET.SubElement(parent, tag, {key: _text(value) for key, value in attributes.items()})
    if text is not None:
        element.text = _text(text)


def _text(value: object) -> str:
    """ElementTree escapes markup but writes any character it is given."""
    return _NOT_XML.sub("\ufffd", str(value))
