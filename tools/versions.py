"""Versioned documents: which documents are versions of one another, and keeping only the newest.

A *document family* is the metadata `family` when a document sets it (explicit, recommended), else the
doc_type plus the title with the version string removed ("Orbit 2.9.1 Release Notes" and "Orbit 2.10.0
Release Notes" are both `release_notes|orbit release notes`). Documents without a `version` belong to no
family and are never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ragroute.tools.dates import parse_date
from ragroute.tools.versioning import version_key


def family_of(meta: Mapping[str, Any]) -> str:
    """The family a document's chunk belongs to ("" when it has no version)."""
    version = str(meta.get("version") or "")
    if not version:
        return ""
    explicit = meta.get("family")
    if isinstance(explicit, str) and explicit.strip():
        return "family:" + explicit.strip().lower()
    title = str(meta.get("title") or "")
    for spelled in (f"v{version}", f"V{version}", version):
        title = title.replace(spelled, " ")
    title = " ".join(title.split()).lower()
    return f"{str(meta.get('doc_type') or '').lower()}|{title}"


def filters_name(filters: Any, field: str) -> bool:
    """True when a filter (Mongo-style dict, any nesting) puts a condition on `field`."""
    if isinstance(filters, Mapping):
        return any(k == field or filters_name(v, field) for k, v in filters.items())
    if isinstance(filters, list | tuple):
        return any(filters_name(v, field) for v in filters)
    return False


def _newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether metadata `a` is a newer version than `b` (by version, then by last_updated)."""
    try:
        ka, kb = version_key(str(a.get("version"))), version_key(str(b.get("version")))
        if ka != kb:
            return ka > kb
    except TypeError:  # mixed number/text parts: fall back to dates
        pass
    da, db = parse_date(a.get("last_updated")), parse_date(b.get("last_updated"))
    return da is not None and db is not None and da > db


def _named(version: str, question: str) -> bool:
    """Whether the question names this version (e.g. "2.9.1", "v2.9.1")."""
    return bool(version) and re.search(rf"(?<![\w.]){re.escape(version)}(?![\w]|\.\d)", question) is not None


def prefer_latest(hits: list[dict], *, filters: Any = None, question: str = "") -> list[dict]:
    """`hits` without chunks of older versions of a family whose newer version is also among the hits.

    Nothing is dropped when the filters put a condition on `version` (the caller asked for a version),
    and a version the question names ("what changed in 2.9.1?") is always kept.
    """
    if not hits or filters_name(filters, "version"):
        return hits
    newest: dict[str, Mapping[str, Any]] = {}
    for hit in hits:
        meta = hit.get("metadata") or {}
        fam = family_of(meta)
        if fam and (fam not in newest or _newer(meta, newest[fam])):
            newest[fam] = meta
    out = []
    for hit in hits:
        meta = hit.get("metadata") or {}
        fam = family_of(meta)
        version = str(meta.get("version") or "")
        if fam and _newer(newest[fam], meta) and not _named(version, question):
            continue
        out.append(hit)
    return out
