"""Rebuild the vendored Kubernetes schemas in this folder (by hand, not in CI).

The source is the `kubernetes-validate` wheel from PyPI (Apache-2.0), which
ships the Kubernetes OpenAPI definitions as JSON Schema (draft 2020-12), one
file per kind plus a shared `_definitions.json` (1.5 MB). Each kind's file
here is made standalone: its references into `_definitions.json` are
rewritten to local `#/$defs/...` and only the definitions it reaches are
copied in, so check-jsonschema validates offline. The `-strict` variant
refuses unknown keys (a misspelt `completionMode` is an error, not ignored).

    pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv
    python tests/schemas/k8s/vendor.py /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

VERSION = "v1.34.0-local-strict"
KINDS = ("job-batch-v1.json", "persistentvolumeclaim-v1.json", "configmap-v1.json")
PREFIX = "/api/_definitions.json#/$defs/"


def _refs(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _localised(node: object) -> object:
    if isinstance(node, dict):
        return {key: (value.replace(PREFIX, "#/$defs/") if key == "$ref" else _localised(value))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_localised(value) for value in node]
    return node


def standalone(kind: dict, definitions: dict) -> dict:
    needed: set[str] = set()
    todo: set[str] = set()
    _refs(kind, todo)
    while todo:
        ref = todo.pop()
        name = ref.removeprefix(PREFIX).removeprefix("#/$defs/")  # within the definitions
        if name in needed:
            continue
        needed.add(name)
        _refs(definitions[name], todo)
    out = _localised(kind)
    out["$defs"] = {name: _localised(definitions[name]) for name in sorted(needed)}
    out.pop("$id", None)
    return out


def main(wheel: str) -> None:
    base = f"kubernetes_validate/kubernetes-json-schema/{VERSION}/"
    with zipfile.ZipFile(wheel) as archive:
        definitions = json.loads(archive.read(base + "_definitions.json"))["$defs"]
        for name in KINDS:
            kind = json.loads(archive.read(base + name))
            path = Path(__file__).with_name(name)
            path.write_text(json.dumps(standalone(kind, definitions), indent=1, sort_keys=True)
                            + "\n")
            print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
