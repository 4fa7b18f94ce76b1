"""Freshness: time decay of retrieval scores by `last_updated`, and notes on possibly outdated sources."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ragroute.tools.dates import parse_date
from ragroute.tools.versioning import is_newer, version_key
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

    A source is flagged when its last_updated is older than `stale_after_days`, or when the sources (and
    `others`, e.g. all retrieved candidates) hold other versions of the same document family; the note
    names a newer version when one exists.
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
        old = date is not None and (today - date).days > stale_after_days
        version = str(meta.get("version", ""))
        siblings = versions.get(_family(meta), set()) - {version} if version else set()
        newer = sorted((v for v in siblings if is_newer(v, version)), key=version_key)
        if not (old or siblings):
            continue
        bits = [f"version {version}"] if version else []
        if date is not None:
            bits.append(f"last updated {date.isoformat()}")
        if newer:
            reason = f"a newer version ({newer[-1]}) exists"
        elif old:
            reason = "may be outdated"
        else:
            reason = "other versions exist"
        notes.append(f"Note: source [{src['n']}] is {', '.join(bits)}; {reason}.")
    return notes


def _family(meta: dict) -> str:
    """Group versions by document family (ragroute.tools.versions.family_of: metadata `family`, else
    doc_type + title without the version)."""
    return family_of(meta) or f"{meta.get('doc_type', '')}|{str(meta.get('title', '')).strip().lower()}"
