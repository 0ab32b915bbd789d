"""Checks that where a run will write can be written, made before anything is
sent: a run whose results cannot be saved is a run whose load was wasted.

Probing beats `os.access`: CI runs as root, for whom `access` says yes to
almost anything, while a read-only mount or a path through a file still fails.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from loadaction.errors import PlanError


def check_output_dir(path: Path, what: str, contents: tuple[str, ...] = ()) -> None:
    """`path` is (or can be made) a directory we can create files in, and none
    of `contents` (file names the run will write there) is a directory."""
    if path.exists() and not path.is_dir():
        raise PlanError(f"{what} {path}: exists and is not a directory",
                        hint="name a directory (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".loadaction-probe-{secrets.token_hex(4)}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise PlanError(f"{what} {path}: cannot write there: {exc.strerror or exc}") from None
    for name in contents:
        if (path / name).is_dir():
            raise PlanError(f"{what} {path}: {name} is a directory; it would be overwritten by a file")


def check_appendable_file(path: Path, what: str) -> None:
    """`path` is a regular file (or can be created) that we can append to; it is
    opened for appending and closed again, writing nothing."""
    if path.exists() and not path.is_file():
        raise PlanError(f"{what} {path}: is not a regular file")
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise PlanError(f"{what} {path}: cannot append to it: {exc.strerror or exc}") from None
