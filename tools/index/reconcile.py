"""Recovery of the embedded backend: make Chroma hold exactly the vectors the SQLite docstore knows.

An upsert writes new vectors before the SQLite transaction that references them and deletes old ones after
it, so a process killed in between leaves stray or missing vectors; this repairs both on open.
"""

from __future__ import annotations

import logging

from ragroute.tools import filters as F
from ragroute.tools.embeddings import Embedder
from ragroute.tools.index.docstore import DocStore
from ragroute.tools.index.records import embed_text
from ragroute.tools.vectorstore import VectorStore

log = logging.getLogger("ragroute.tools.index")


def reconcile(
    docstore: DocStore, store: VectorStore, embedder: Embedder, known: set[str], label: str
) -> dict[str, int]:
    """Drop vectors whose ids are not `known`, re-embed known ids the store lacks; the counts."""
    present = store.ids()
    extra = present - known
    missing = sorted(known - present)
    if extra:
        store.delete(sorted(extra))
    if missing:
        rows = docstore.chunks_by_vector_id(missing)
        embs = embedder.embed_documents([embed_text(text, meta) for _, _, text, meta in rows])
        store.upsert(
            [vid for _, vid, _, _ in rows],
            embs,
            [{**F.chroma_metadata(meta), "chunk_id": cid} for cid, _, _, meta in rows],
        )
    if extra or missing:
        log.info("reconciled %s: removed %d stray vectors, re-embedded %d", label, len(extra), len(missing))
    return {"removed": len(extra), "reembedded": len(missing)}
