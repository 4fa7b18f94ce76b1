"""The index's stats report (CLI `ragroute stats`, health checks): backend counts plus configuration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from ragroute.tools.filters import acl_allows
from ragroute.tools.index.config import IndexConfig
from ragroute.tools.types import AccessScope
from ragroute.tools.versions import family_of


def iso(ts: float | None) -> str | None:
    """A UNIX time as an ISO UTC timestamp (None stays None)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).isoformat(timespec="seconds")


def version_summary(metas: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many documents carry a version, in how many families, and how many families have several."""
    families: dict[str, set[str]] = {}
    versioned: set[str] = set()
    for meta in metas:
        fam = family_of(meta)
        if fam:
            families.setdefault(fam, set()).add(str(meta.get("version")))
            versioned.add(str(meta.get("doc_id")))
    return {
        "versioned_documents": len(versioned),
        "families": len(families),
        "families_with_several_versions": sum(1 for v in families.values() if len(v) > 1),
    }


def report(
    config: IndexConfig,
    version: int,
    counts: dict[str, Any],
    *,
    query_cache: dict[str, Any],
    embedding: str,
) -> dict[str, Any]:
    """The stats dict, keys in the order the CLI prints them."""
    return {
        "path": config.path,
        "version": version,
        "documents": counts["documents"],
        "chunks": counts["chunks"],
        "parents": counts["parents"],
        "versions": counts["versions"],
        "soft_deleted": counts["soft_deleted"],
        "oldest_soft_delete": iso(counts["oldest_soft_delete"]),
        "hard_deleted": counts["hard_deleted"],
        "last_update": iso(counts["updated_at"]),
        "query_embedding_cache": query_cache,
        "vectors": counts["vectors"],
        "bm25": counts["bm25"],
        "embedding": embedding,
        "embedding_dim": counts["embedding_dim"],
        "sentence_vectors": counts["sentence_vectors"],
        "chroma_mode": config.chroma_mode,
        "collection": config.collection,
    }


def visible_report(
    live: Iterable[dict[str, Any]],
    trash: Iterable[dict[str, Any]],
    access: AccessScope,
    *,
    embedding: str,
) -> dict[str, Any]:
    """The stats a restricted caller may see: its readable live and soft-deleted documents, their chunks."""
    mine = [d for d in live if acl_allows(d.get("metadata") or {}, access)]
    return {
        "documents": len(mine),
        "chunks": sum(int(d["n_chunks"]) for d in mine),
        "soft_deleted": sum(1 for d in trash if acl_allows(d.get("metadata") or {}, access)),
        "embedding": embedding,
    }
