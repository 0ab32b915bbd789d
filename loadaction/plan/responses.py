"""Steps that read a response: `check`, `extract` and `record`.

Condition names are built here, once, because they are what users see in
the summary and filter on (the `check` tag); they read like the YAML that
produced them: `status in [200, 409]`, `json $.url exists`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from loadaction.errors import PlanError, did_you_mean
from loadaction.plan.fields import (
    check_keys, expect_bool, expect_map, expect_seq, expect_str, expect_text, single_entry,
)
from loadaction.plan.jsonpath import CompiledPath, compile_path
from loadaction.plan.metrics import BUILTIN_METRICS
from loadaction.plan.model import (
    CheckStep, Condition, ExtractStep, Extraction, MapRecordStep, Matcher, MatcherKind,
    MetricDecl, RecordStep, Subject,
)
from loadaction.plan.source import Map, Node, Scalar, Seq, describe, key_text
from loadaction.plan.templates import Templates

SUBJECTS = ("status", "header", "json", "body")
MATCHER_KINDS = ("in", "exists", "contains", "matches")
CHECK_KEYS = ("name", "response", *SUBJECTS)
EXTRACT_KEYS = ("response", *SUBJECTS)
RECORD_METRIC_KEYS = ("metric", "value", "when")
RECORD_MAP_KEYS = (*SUBJECTS, "map", "response")


def parse_check(node: Node) -> CheckStep:
    check = expect_map(node, "check")
    check_keys(check, CHECK_KEYS, "in check")
    name = check.get("name")
    prefix = f"{expect_str(name, 'name')}: " if name is not None else ""
    conditions = []
    for subject, entry in check.items():  # in written order: that is how they are listed
        if subject in ("status", "body"):
            conditions.append(_condition(prefix, subject, None, subject, entry.value))
        elif subject in ("header", "json"):
            for key, item in expect_map(entry.value, subject).items():
                path = compile_path(key, item.key_source) if subject == "json" else key
                conditions.append(_condition(prefix, subject, path, f"{subject} {key}",
                                             item.value))
    if not conditions:
        raise PlanError("check has no conditions (expected status, header, json or body)",
                        check.source)
    return CheckStep(tuple(conditions), _response(check), check.source)


def parse_extract(node: Node) -> ExtractStep:
    """`json: {var: path}`, `header: {var: name}`, `status: var`, `body: var`."""
    extract = expect_map(node, "extract")
    check_keys(extract, EXTRACT_KEYS, "in extract")
    items = []
    for subject in ("json", "header"):
        value = extract.get(subject)
        if value is None:
            continue
        for var, entry in expect_map(value, subject).items():
            text = expect_str(entry.value, f"{subject}.{var}")
            key = compile_path(text, entry.value.source) if subject == "json" else text
            items.append(Extraction(var, cast(Subject, subject), key))
    for subject in ("status", "body"):
        value = extract.get(subject)
        if value is not None:
            items.append(Extraction(expect_str(value, subject), cast(Subject, subject), None))
    if not items:
        raise PlanError("extract has nothing to extract (expected json, header, status or "
                        "body)", extract.source)
    return ExtractStep(tuple(items), _response(extract), extract.source)


def parse_record(node: Node, metrics: Mapping[str, MetricDecl],
                 templates: Templates) -> RecordStep | MapRecordStep:
    """Either `metric` (+ `value`, `when`), or a response field and a `map`
    from its values to counters."""
    record = expect_map(node, "record")
    # Typos first, against both forms, so `metrc:` suggests `metric`.
    check_keys(record, (*RECORD_METRIC_KEYS, *RECORD_MAP_KEYS), "in record")
    if "metric" in record:
        check_keys(record, RECORD_METRIC_KEYS, "in record with 'metric'")
        return _record_metric(record, metrics, templates)
    check_keys(record, RECORD_MAP_KEYS, "in record without 'metric'")
    subjects = [subject for subject in SUBJECTS if subject in record]
    if len(subjects) != 1 or "map" not in record:
        raise PlanError("record needs 'metric', or one of status, header, json or body "
                        "with a 'map'", record.source)
    subject = subjects[0]
    subject_node = record.entries[subject].value
    key: str | CompiledPath | None = None
    if subject == "json":
        key = compile_path(expect_str(subject_node, "json"), subject_node.source)
    elif subject == "header":
        key = expect_str(subject_node, "header")
    elif not expect_bool(subject_node, subject):
        raise PlanError(f"{subject}: expected true (record the {subject} itself)",
                        subject_node.source)
    mapping = []
    for value, entry in expect_map(record.entries["map"].value, "map").items():
        metric = _declared_metric(entry.value, metrics, "map")
        if metric.kind != "counter":
            raise PlanError(f"map: '{metric.name}' is a {metric.kind}; mapped metrics must be "
                            "counters", entry.value.source)
        mapping.append((value, metric.name))
    return MapRecordStep(cast(Subject, subject), key, tuple(mapping), _response(record),
                         record.source)


def _record_metric(record: Map, metrics: Mapping[str, MetricDecl],
                   templates: Templates) -> RecordStep:
    metric = _declared_metric(record.entries["metric"].value, metrics, "metric")
    value, when = record.get("value"), record.get("when")
    if value is None and metric.kind in ("trend", "gauge"):
        raise PlanError(f"record: '{metric.name}' is a {metric.kind}, so it needs a 'value'",
                        record.source)
    return RecordStep(
        metric.name,
        templates.compile_node(value) if value is not None else None,
        templates.compile_node(when) if when is not None else None,
        record.source,
    )


def _declared_metric(node: Node, metrics: Mapping[str, MetricDecl], what: str) -> MetricDecl:
    name = expect_str(node, what)
    if name in BUILTIN_METRICS:
        raise PlanError(f"{what}: '{name}' is a built-in metric; record into a custom one",
                        node.source)
    if name not in metrics:
        raise PlanError(f"{what}: metric '{name}' is not declared under metrics", node.source,
                        did_you_mean(name, metrics))
    return metrics[name]


def _response(node: Map) -> str | None:
    response = node.get("response")
    return expect_str(response, "response") if response is not None else None


def _condition(prefix: str, subject: str, key: Any, label: str, node: Node) -> Condition:
    matcher = _matcher(node, label)
    if subject == "status" and matcher.kind in ("equals", "in"):
        operands = matcher.operand if matcher.kind == "in" else (matcher.operand,)
        for operand in operands:
            if not isinstance(operand, int) or isinstance(operand, bool):
                raise PlanError(f"status: expected HTTP status codes, got "
                                f"{_text(operand)!r}", node.source)
    return Condition(f"{prefix}{label} {_matcher_text(matcher)}", cast(Subject, subject), key,
                     matcher, node.source)


def _matcher(node: Node, what: str) -> Matcher:
    """A scalar means equals, a list means any of; otherwise `{kind: operand}`."""
    if isinstance(node, Scalar):
        return Matcher("equals", node.value)
    if isinstance(node, Seq):
        return Matcher("in", _scalars(node, what))
    kind, entry = single_entry(node, what)
    if kind not in MATCHER_KINDS:
        raise PlanError(f"{what}: unknown matcher '{kind}' (expected one of: "
                        f"{', '.join(MATCHER_KINDS)})", entry.key_source,
                        did_you_mean(kind, MATCHER_KINDS))
    operand_node = entry.value
    operand: Any
    if kind == "in":
        operand = _scalars(expect_seq(operand_node, "in"), "in")
    elif kind == "exists":
        operand = expect_bool(operand_node, "exists")
    elif kind == "contains":
        operand = expect_text(operand_node, "contains")
    else:
        pattern = expect_str(operand_node, "matches")
        try:
            operand = re.compile(pattern)
        except re.error as exc:
            raise PlanError(f"matches: invalid regular expression '{pattern}': {exc}",
                            operand_node.source) from None
    return Matcher(cast(MatcherKind, kind), operand)


def _scalars(node: Seq, what: str) -> tuple[Any, ...]:
    values = []
    for item in node.items:
        if not isinstance(item, Scalar):
            raise PlanError(f"{what}: expected plain values, got {describe(item)}", item.source)
        values.append(item.value)
    if not values:
        raise PlanError(f"{what}: the list is empty", node.source)
    return tuple(values)


def _matcher_text(matcher: Matcher) -> str:
    operand = matcher.operand
    if matcher.kind == "equals":
        return f"== {_text(operand)}"
    if matcher.kind == "in":
        return "in [" + ", ".join(_text(value) for value in operand) + "]"
    if matcher.kind == "exists":
        return "exists" if operand else "does not exist"
    if matcher.kind == "matches":
        return f"matches {operand.pattern}"
    return f"contains {operand}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else key_text(value)

