#!/usr/bin/env python3
"""Point a release's action.yml at its prebuilt image, by digest.

The release workflow (.github/workflows/release.yml) runs this on the
detached release commit it tags, after it has pushed the image; main keeps
`image: Dockerfile`. From the repository root:

    python release/pin_image.py --image ghcr.io/owner/repo --digest sha256:<64 hex>
        [action.yml] [--output PATH | --output -]

Only the value of `runs.image` changes, to `docker://IMAGE@DIGEST`; every
other byte (comments, order, quoting, line endings) stays, and the result is
read back to check that nothing else differs. Refused, exit 2 with the
reason on stderr:
  - a digest that is not `sha256:` and 64 lowercase hex digits;
  - an image name that is not `registry/path` in lowercase, or that already
    carries a tag or a digest;
  - an action.yml whose `runs.using` is not `docker`;
  - one whose `runs.image` is already a `docker://` reference (a release
    commit: tag a commit of main instead);
  - one whose `runs.image` is not a one-line scalar this script can edit.
Needs ruamel.yaml (pinned in requirements/action.txt); imports nothing else
from outside the standard library, and nothing of loadaction.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Docker's reference grammar, lowercase: a registry host (with a dot, or a
# port) and one or more path components; no tag, no digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(rf"(?:[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?|[a-z0-9-]+:\d+)"
                   rf"(?:/{_COMPONENT})+")
# YAML's line breaks, which are what ruamel counts lines by.
_LINE_BREAK = re.compile(r"(\r\n|[\r\n\x85\u2028\u2029])")
# A one-line scalar: plain, single- or double-quoted (no escapes), then an
# optional comment.
_SCALAR = re.compile(r"""(?P<value>'[^']*'|"[^"\\]*"|[^\s#'"][^\s#]*)(?P<tail>[ \t]+#.*|[ \t]*)""")


class PinError(ValueError):
    """The action.yml or the arguments are refused; the message says why."""


def reference(image: str, digest: str) -> str:
    """`docker://IMAGE@DIGEST`, after checking both."""
    if not DIGEST.fullmatch(digest):
        raise PinError(f"digest {digest!r} is not sha256: and 64 lowercase hex digits")
    if not IMAGE.fullmatch(image):
        raise PinError(f"image {image!r} is not a lowercase registry/path without tag or digest")
    return f"docker://{image}@{digest}"


def _load(text: str, what: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise PinError(f"{what} is not valid YAML: {exc}") from None


def _plain(node: Any) -> Any:
    """The round-trip document as plain dicts, lists and scalars, to compare."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def pin(text: str, image: str, digest: str) -> str:
    """action.yml's text with `runs.image` set to `docker://IMAGE@DIGEST`, nothing else changed."""
    ref = reference(image, digest)
    doc = _load(text, "action.yml")
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, dict):
        raise PinError("action.yml has no `runs` mapping")
    if runs.get("using") != "docker":
        raise PinError(f"runs.using is {runs.get('using')!r}, not 'docker': not a Docker action")
    current = runs.get("image")
    if not isinstance(current, str) or not current:
        raise PinError("runs.image is missing or not a string")
    if current.startswith("docker://"):
        raise PinError(f"runs.image is already {current!r}: this is a release commit; "
                       "tag a commit whose action.yml builds the Dockerfile")

    line_no, col = runs.lc.value("image")
    parts = _LINE_BREAK.split(text)   # line, break, line, break, ..., last line
    lines, breaks = parts[0::2], parts[1::2]
    line = lines[line_no]
    match = _SCALAR.fullmatch(line, col)
    if not match or _unquote(match["value"]) != current:
        raise PinError(f"runs.image (line {line_no + 1}) is not a one-line scalar this can edit")
    quote = match["value"][0] if match["value"][0] in "'\"" else ""
    lines[line_no] = f"{line[:col]}{quote}{ref}{quote}{match['tail']}"
    result = "".join(part for pair in zip(lines, breaks + [""]) for part in pair)

    before, after = _plain(doc), _plain(_load(result, "the rewritten action.yml"))
    if after["runs"].get("image") != ref:
        raise PinError("the rewritten action.yml does not read back with the new runs.image")
    after["runs"]["image"] = current
    if after != before:
        raise PinError("the rewrite changed more than runs.image")
    return result


def _unquote(value: str) -> str:
    return value[1:-1] if value[:1] in ("'", '"') else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", default="action.yml", type=Path,
                        help="the action.yml to read (default: action.yml)")
    parser.add_argument("--image", required=True, help="e.g. ghcr.io/owner/repo")
    parser.add_argument("--digest", required=True, help="sha256:<64 hex>, as pushed")
    parser.add_argument("--output", help="where to write (default: in place; - for stdout)")
    args = parser.parse_args(argv)
    try:
        text = args.action.read_bytes().decode("utf-8")
        result = pin(text, args.image, args.digest)
    except (OSError, UnicodeDecodeError, PinError) as exc:
        print(f"pin_image: {args.action}: {exc}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(result)
    else:
        out = Path(args.output) if args.output else args.action
        out.write_bytes(result.encode("utf-8"))
        print(f"pin_image: {out}: runs.image = {reference(args.image, args.digest)}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
