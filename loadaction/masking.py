"""Keeps secret values out of everything the tool prints or writes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

# `scheme://user:password@host`: the password part of any URL in any text.
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<password>[^@\s/]+)(?=@)")


def mask_url_credentials(text: str) -> str:
    """`http://user:PASSWORD@host` -> `http://user:***@host`, wherever a URL appears."""
    if "://" not in text:
        return text
    return _URL_CREDENTIALS.sub(lambda m: m["head"] + MASK, text)


def url_passwords(text: str) -> list[str]:
    """The passwords inside URLs in `text` (for `::add-mask::`)."""
    return [m["password"] for m in _URL_CREDENTIALS.finditer(text)] if "://" in text else []


class Masker:
    """Replaces every known secret value with `***`, and the password of any
    URL (`user:***@host`), whether or not it was declared a secret.

    Values shorter than 4 characters are not masked: masking `1` or `ab` would
    garble every report while protecting nothing worth protecting.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return mask_url_credentials(text)

    def deep(self, value: Any) -> Any:
        """Mask every string inside a JSON-like value."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(k) if isinstance(k, str) else k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value
