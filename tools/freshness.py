"""Freshness: time decay of retrieval scores by `last_updated`, and notes on possibly outdated sources."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ragroute.tools.dates import parse_date
from ragroute.tools.versioning import is_newer
from ragroute.tools.versions import family_of


def decay_factor(last_updated: Any, half_life_days: float, today: dt.date) -> float:
    """0.5 ** (age / half-life); 1.0 for undated or future-dated content."""
    date = parse_date(last_updated)
    if date is None:
        return 1.0
    age = max(0, (today - date).days)
    return 0.5 ** (age / half_life_days)


def apply_decay(
    hits: list[dict], half_lives: dict[str, float] | None, today: dt.date | None = None
) -> list[dict]:
    """Scale each hit's score by its doc_type's half-life ("*" is the default) and re-sort; None = off."""
    if not half_lives:
        return hits
    today = today or dt.date.today()
    out = []
    for hit in hits:
        meta = hit.get("metadata") or {}
        half_life = half_lives.get(str(meta.get("doc_type", "")), half_lives.get("*"))
        factor = decay_factor(meta.get("last_updated"), float(half_life), today) if half_life else 1.0
        out.append({**hit, "score": float(hit.get("score", 0.0)) * factor, "freshness": factor})
    return sorted(out, key=lambda h: -h["score"])


def staleness_notes(
    sources: list[dict],
    cited: list[int],
    stale_after_days: int,
    today: dt.date | None = None,
    others: list[dict] | None = None,
) -> list[str]:
    """Notes naming version/date of cited sources that may be outdated.

    A versioned source is flagged only when the sources (and `others`, e.g. all retrieved candidates)
    hold a newer version of its document family, or versions that cannot be ordered against it; the
    newest known version is current however old it is. A source without a version is flagged when its
    last_updated is older than `stale_after_days`: its date is the only sign of age it has.
    """
    today = today or dt.date.today()
    by_n = {int(s["n"]): s for s in sources}
    versions: dict[str, set[str]] = {}
    for item in [*sources, *(others or [])]:
        meta = item.get("metadata") or {}
        if meta.get("version"):
            versions.setdefault(_family(meta), set()).add(str(meta["version"]))
    notes = []
    for src in (by_n[n] for n in cited if n in by_n):
        meta = src.get("metadata") or {}
        date = parse_date(meta.get("last_updated"))
        version = str(meta.get("version") or "")
        reason = _version_reason(version, versions.get(_family(meta), set())) if version else None
        if not version and date is not None and (today - date).days > stale_after_days:
            reason = "may be outdated"
        if reason is None:
            continue
        bits = [f"version {version}"] if version else []
        if date is not None:
            bits.append(f"last updated {date.isoformat()}")
        notes.append(f"Note: source [{src['n']}] is {', '.join(bits)}; {reason}.")
    return notes


def _version_reason(version: str, known: set[str]) -> str | None:
    """Why a source of this version may be outdated given the family's known versions; None if current."""
    siblings = known - {version}
    newer = sorted(v for v in siblings if is_newer(v, version))
    if newer:
        newest = newer[0]
        for v in newer[1:]:
            newest = v if is_newer(v, newest) else newest
        return f"a newer version ({newest}) exists"
    if any(not is_newer(version, v) for v in siblings):  # no order between them ("2.x" vs "2.10.0")
        return "other versions exist"
    return None


def _family(meta: dict) -> str:
    """Group versions by document family (ragroute.tools.versions.family_of: metadata `family`, else
    doc_type + title without the version)."""
    return family_of(meta) or f"{meta.get('doc_type', '')}|{str(meta.get('title', '')).strip().lower()}"
