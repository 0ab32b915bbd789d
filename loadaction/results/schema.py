"""The results document's JSON Schema (draft 2020-12), and checking a
document against it.

The schema ships inside the package (`results.schema.json`, which
docs/results.schema.json links to), so an installed loadaction checks with
exactly the schema it documents. A problem is named by the JSON path of the
value at fault, `$.thresholds[2].verdict: 'maybe' is not one of [...]`.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from loadaction.errors import PlanError

SCHEMA_VERSION = 1
SCHEMA_FILE = "results.schema.json"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxdict = _SHORT.maxlist = 3
_SHORT.maxlevel = 2


@cache
def results_schema() -> dict[str, Any]:
    """The schema, parsed; callers must not change it."""
    text = files("loadaction.results").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(results_schema())


def json_path(path: Iterable[str | int]) -> str:
    """`$.metrics.http_reqs.by_tags[0]`; keys that are not plain names are
    quoted (`$.metrics['my.metric']`), so every path reads back unambiguously."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]".replace('"', "'")
    return out


def results_problem(doc: object) -> str | None:
    """The first thing in `doc` the schema rejects, as `<JSON path>: <what>`;
    None when the document is valid."""
    error = best_match(_validator().iter_errors(doc))
    return None if error is None else _describe(error)


def _describe(error: ValidationError) -> str:
    message, instance = error.message, error.instance
    shown = repr(instance)
    if message.startswith(shown):
        # Messages open with the value at fault: in JSON's words for null and
        # booleans, and shortened when it is a whole object or list.
        if instance is None or isinstance(instance, bool):
            message = json.dumps(instance) + message[len(shown):]
        elif len(shown) > 80:
            message = _SHORT.repr(instance) + message[len(shown):]
    return f"{json_path(error.absolute_path)}: {message}"


def validate_results(doc: object, name: str) -> None:
    """Raise PlanError (exit 2) naming `name` unless `doc` is a results
    document of this schema. What is not one at all, or is of another
    schema number, is said in words before the schema's first complaint."""
    if not isinstance(doc, dict):
        raise PlanError(f"{name}: not a loadaction results document "
                        f"(expected a JSON object, got {_json_type(doc)})")
    if "schema" not in doc:
        raise PlanError(f"{name}: not a loadaction results document (missing 'schema')")
    version = doc["schema"]
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise PlanError(f"{name}: unsupported results schema {json.dumps(version)} "
                        f"(this loadaction reads schema {SCHEMA_VERSION})")
    problem = results_problem(doc)
    if problem is not None:
        raise PlanError(f"{name}: {problem}")


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
