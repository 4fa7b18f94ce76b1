"""Version strings: the one place they are parsed and compared, in the forms callers need.

`version_key` (a sortable tuple, "2.10.0" > "2.9.1"), `is_newer`, `version_number` (one float for range
filters and Chroma's shadow keys) and `normalize_version` (validated text, for ingest).
"""

from __future__ import annotations

import re
from typing import Any

_FILTER_VERSION = re.compile(r"^[vV]?(\d{1,3})((?:\.\d{1,3}){0,3})$")
_METADATA_VERSION = re.compile(r"^\d+(\.\d+)*([-+][0-9A-Za-z.\-]+)?$")


def version_key(version: str) -> tuple:
    """Sortable form of a version string ("2.10.0" > "2.9.1")."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-+]", str(version)) if p)


def is_newer(a: str, b: str) -> bool:
    """Whether version `a` is newer than `b`; False when they cannot be compared (mixed number/text parts)."""
    try:
        return version_key(a) > version_key(b)
    except TypeError:
        return False


def version_number(value: Any) -> float | None:
    """Map "2.10.0" / "v1.2" to a sortable number (4 components of 0-999), or None if not a version."""
    if not isinstance(value, str):
        return None
    m = _FILTER_VERSION.match(value.strip())
    if not m:
        return None
    parts = [int(m.group(1))] + [int(p) for p in m.group(2).split(".")[1:]]
    parts += [0] * (4 - len(parts))
    key = 0
    for p in parts:
        key = key * 1000 + p
    return float(key)


def normalize_version(value: Any) -> str:
    """A dotted version ("2.10.1", "v2.10.1-rc1") as text without the leading v; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"not a version: {value!r}")
    text = str(value).strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    if not _METADATA_VERSION.match(text):
        raise ValueError(f"not a version: {value!r}")
    return text
