"""Reading and writing results.json.

The document is written once at the end of a run, possibly while the run is
being torn down by a signal, so the write is atomic: a reader (or the next
`loadaction report`) sees the old file or the new one, never half of one.
Reading checks the document against the JSON Schema, so a wrong path or an
old or foreign file gives one line naming the file and the JSON path of the
first problem, instead of a KeyError deep inside a renderer.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from loadaction.errors import PlanError, Source
from loadaction.results.schema import validate_results


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
    """Read and check a results document; PlanError (exit 2) names the file
    and the first problem."""
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
    except RecursionError:  # `[[[[…` a hundred thousand deep: not a results document
        raise PlanError(f"{path}: invalid JSON: nested too deeply to be a results document") from None
    validate_results(doc, str(path))
    return doc  # type: ignore[no-any-return]
