"""The files one plan load read, and the digest that identifies them together.

A plan's behaviour depends on every file it loads, not only the one named on
the command line: shard machines with different versions of an included
file, an `extends` base or a data file ran different tests, and
`loadaction merge` must be able to tell. Each file is hashed as it is read
(the very bytes that were parsed, nothing is read again), and the digest
lists files by their path from the plan file's directory, so one tree
checked out in two places gives one digest.
"""

from __future__ import annotations

import hashlib
import json
import os


class PlanInputs:
    """Every file of one plan load, by the path errors show it under, with
    the SHA-256 of the bytes read from it."""

    def __init__(self) -> None:
        self._sha256: dict[str, str] = {}

    def record(self, path: str, data: bytes) -> None:
        self._sha256[os.path.normpath(path)] = hashlib.sha256(data).hexdigest()

    def sha256(self, path: str) -> str | None:
        """The SHA-256 of the bytes read from `path`; None if it was not read."""
        return self._sha256.get(os.path.normpath(path))

    def digest(self, plan_file: str) -> str:
        """SHA-256 of the JSON array of `[path, sha256]` pairs, sorted by path,
        where path is relative to `plan_file`'s directory with `/` separators
        (results.json `plan.inputs_sha256`, docs/results-schema.md)."""
        base = os.path.dirname(plan_file) or os.curdir
        listing = sorted([_relative(path, base), sha256] for path, sha256 in self._sha256.items())
        text = json.dumps(listing, ensure_ascii=False, separators=(",", ":"))
        # surrogateescape: a file name that is not UTF-8 hashes as its own bytes
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _relative(path: str, base: str) -> str:
    try:
        relative = os.path.relpath(path, base)
    except ValueError:  # Windows: another drive than the plan's has no relative path
        relative = os.path.abspath(path)
    return relative.replace(os.sep, "/")
