"""Freshness: time decay of retrieval scores by `last_updated`, and notes on possibly outdated sources."""

from __future__ import annotations

import datetime as dt
from typing import Any


def parse_date(value: Any) -> dt.date | None:
    """An ISO date/datetime string (or date) as a date; None when missing or unparsable."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


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
    sources: list[dict], cited: list[int], stale_after_days: int, today: dt.date | None = None
) -> list[str]:
    """Notes naming version/date of cited sources that may be outdated.

    A source is flagged when its last_updated is older than `stale_after_days`, or when the cited sources
    carry different versions of the same document title (the reader should know which one said what).
    """
    today = today or dt.date.today()
    by_n = {int(s["n"]): s for s in sources}
    cited_sources = [by_n[n] for n in cited if n in by_n]
    versions_by_title: dict[str, set[str]] = {}
    for src in sources:
        meta = src.get("metadata") or {}
        if meta.get("version"):
            versions_by_title.setdefault(_family(meta), set()).add(str(meta["version"]))
    notes = []
    for src in cited_sources:
        meta = src.get("metadata") or {}
        date = parse_date(meta.get("last_updated"))
        old = date is not None and (today - date).days > stale_after_days
        multi = len(versions_by_title.get(_family(meta), ())) > 1
        if not (old or multi):
            continue
        bits = []
        if meta.get("version"):
            bits.append(f"version {meta['version']}")
        if date is not None:
            bits.append(f"last updated {date.isoformat()}")
        reason = "may be outdated" if old else "other versions exist"
        notes.append(f"Note: source [{src['n']}] is {', '.join(bits)} and {reason}.")
    return notes


def _family(meta: dict) -> str:
    """Group versions by doc_type + title with version numbers removed."""
    title = str(meta.get("title", ""))
    version = str(meta.get("version", ""))
    return f"{meta.get('doc_type', '')}|{title.replace(version, '').strip().lower()}"
