"""Housekeeping of a Milvus index: reconcile (leftover rows of killed or lost writes, soft-delete marks),
sentence-vector backfill and the stats counts."""

from __future__ import annotations

import logging
from typing import Any

from ragroute.tools.embeddings import Embedder
from ragroute.tools.index import milvus_registry as R
from ragroute.tools.index import sentences as S
from ragroute.tools.index.milvus_collections import ALL, Collections
from ragroute.tools.index.milvus_rows import sentence_rows_of
from ragroute.tools.index.records import ChunkRecord, embed_text
from ragroute.tools.index.stats import version_summary

log = logging.getLogger("ragroute.tools.index")
_BACKFILL_BATCH = 200  # documents per pass when filling in sentence vectors


def reconcile(cols: Collections, registry: R.Registry, min_age_s: float, label: str) -> dict[str, int]:
    """Delete rows of uncommitted generations older than `min_age_s` and repair soft-delete marks."""
    committed = {r["pk"]: (r["gen"], r["state"]) for r in registry.all_rows()}
    known = {gen for gen, _ in committed.values()}
    stale: set[str] = set()
    removed = 0
    for role in ("chunks", "parents", "sentences"):
        for row in cols.rows(role, ALL, ["gen"]):
            if row["gen"] not in known and R.gen_age_s(row["gen"]) >= min_age_s:
                stale.add(row["gen"])
                removed += 1
    cols.delete_gens(sorted(stale))
    wrong: set[tuple[str, str, bool]] = set()
    for row in cols.rows("chunks", ALL, ["doc_id", "gen", "deleted"]):
        gen, state = committed.get(row["doc_id"], ("", ""))
        if row["gen"] == gen and bool(row["deleted"]) != (state == R.TRASH):
            wrong.add((row["doc_id"], gen, state == R.TRASH))
    for doc_id, gen, deleted in sorted(wrong):
        cols.mark_deleted(doc_id, gen, deleted)
    if removed or wrong:
        log.info("reconciled %s: removed %d leftover rows, fixed %d marks", label, removed, len(wrong))
    return {"removed": removed, "reembedded": 0}


def backfill_sentences(cols: Collections, registry: R.Registry, embedder: Embedder) -> int:
    """Sentence vectors for live documents written without them, added to their committed generation;
    the number of documents."""
    have = {r["doc_id"] for r in cols.rows("sentences", ALL, ["doc_id"])}
    todo = [r for r in registry.all_rows(R.LIVE) if r["pk"] not in have]
    for start in range(0, len(todo), _BACKFILL_BATCH):
        gens = {r["pk"]: r["gen"] for r in todo[start : start + _BACKFILL_BATCH]}
        found: dict[str, list[ChunkRecord]] = {d: [] for d in gens}
        for c in cols.rows("chunks", R.id_in("doc_id", list(gens)), ["doc_id", "gen", "text", "metadata"]):
            if gens[c["doc_id"]] == c["gen"]:
                meta = c["metadata"] or {}
                found[c["doc_id"]].append(
                    ChunkRecord("", "", 0, c["text"], meta, None, embed_text(c["text"], meta))
                )
        records = [r for rows in found.values() for r in rows]
        if not records:
            continue
        _, late = S.embed_chunks(embedder, records, with_sentences=True)
        for doc_id, rows in S.sentence_rows(list(found.items()), late, cols.sentence_blobs).items():
            cols.insert("sentences", sentence_rows_of(doc_id, gens[doc_id], rows))
    return len(todo)


def counts(cols: Collections, registry: R.Registry, dim: int) -> dict[str, Any]:
    """The counts `HybridIndex.stats` reports (parents: stored sections, leftovers included)."""
    live = registry.all_rows(R.LIVE)
    trash = registry.all_rows(R.TRASH)
    updated = registry.meta_get("updated_at")
    vectors = cols.count("chunks", "deleted == false")
    return {
        "documents": len(live),
        "chunks": sum(int(r["n_chunks"]) for r in live),
        "parents": cols.count("parents", "piece == 0"),
        "soft_deleted": len(trash),
        "oldest_soft_delete": min((float(r["deleted_at"]) for r in trash), default=None),
        "hard_deleted": int(registry.meta_get("hard_deleted") or 0),
        "updated_at": float(updated) if updated else None,
        "sentence_vectors": cols.count("sentences"),
        "versions": version_summary({**(r["metadata"] or {}), "doc_id": r["pk"]} for r in live),
        "vectors": vectors,
        "bm25": {"engine": "milvus", "chunks": vectors},
        "embedding_dim": dim,
    }
