"""The storage-backend Protocol HybridIndex drives: operations on documents, chunks and searches.

It is shaped so that every piece of index state (chunks, parents, the document registry with content
hashes, sentence vectors, the index version, soft-delete state) may live in a remote engine: nothing in it
names a table, a file or a local process. `ragroute.tools.index.embedded.EmbeddedBackend` (SQLite +
Chroma + BM25 in a directory) is the first implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
from ragroute.tools import filters as F
from ragroute.tools.index.records import DocumentWrite
from ragroute.tools.types import AccessScope, Chunk, Parent


@dataclass(frozen=True)
class SearchScope:
    """Which chunks a search may return: the caller's metadata filter (raw and parsed) and access scope."""

    filters: dict[str, Any] | None
    node: F.Node | None
    access: AccessScope | None


class Deletion(NamedTuple):
    """What a delete removed: a live document, and/or a soft-deleted copy from the trash."""

    live: bool
    trashed: bool


class IndexBackend(Protocol):
    """Storage and retrieval operations of one index, whatever engine holds the state."""

    @property
    def version(self) -> int:
        """A counter that bumps on every change to the contents (persisted)."""
        ...

    @property
    def uid(self) -> str:
        """A random id made when the index was created."""
        ...

    @property
    def stores_sentences(self) -> bool:
        """True when sentence vectors are stored as documents are written."""
        ...

    def refresh(self) -> None:
        """Pick up changes another handle on the same index made."""
        ...

    def reconcile(self) -> dict[str, int]:
        """Repair vectors against the registry; counts of removed and re-embedded vectors."""
        ...

    def document_hash(self, doc_id: str) -> str | None:
        """Content hash stored at the document's last write, or None if it is not live."""
        ...

    def document_metadata(self, doc_id: str) -> dict[str, Any] | None:
        """Document-level metadata of a live document, or None."""
        ...

    def list_documents(self) -> list[dict[str, Any]]:
        """Live documents: doc_id, content_hash, n_chunks, metadata, updated_at (by doc_id)."""
        ...

    def upsert_documents(self, docs: Sequence[DocumentWrite]) -> list[str]:
        """Add or replace documents atomically each; "added", "updated" or "unchanged" per document."""
        ...

    def delete_document(self, doc_id: str, *, soft: bool) -> Deletion:
        """Remove a document from every search path (soft: keep it restorable in the trash)."""
        ...

    def deleted_documents(self) -> list[dict[str, Any]]:
        """Soft-deleted documents: doc_id, n_chunks, metadata, updated_at, deleted_at (oldest first)."""
        ...

    def restore_document(self, doc_id: str) -> bool:
        """Bring a soft-deleted document back; False when it is not in the trash or live again."""
        ...

    def purge_deleted(self, cutoff: float) -> list[str]:
        """Forget soft-deleted documents deleted at or before the UNIX time `cutoff`; their ids."""
        ...

    def dense_search(
        self, query_vector: Callable[[], Sequence[float]], n: int, scope: SearchScope
    ) -> list[tuple[str, float]]:
        """Nearest `n` (chunk_id, similarity) in `scope`, best first (the vector is made only if needed)."""
        ...

    def keyword_search(self, query: str, n: int, scope: SearchScope) -> list[tuple[str, float]]:
        """Best `n` (chunk_id, BM25 score) in `scope`, best first."""
        ...

    def doc_types(self, chunk_ids: Sequence[str]) -> dict[str, str | None]:
        """Each chunk's `doc_type` metadata (for per-type fusion weights)."""
        ...

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks by id (ids no longer stored are absent); no access check."""
        ...

    def get_chunk(self, chunk_id: str, access: AccessScope | None) -> Chunk | None:
        """One stored chunk, or None (also when `access` may not see it)."""
        ...

    def get_parent(self, parent_id: str, access: AccessScope | None) -> Parent | None:
        """One parent section, or None (also when `access` may see none of its chunks)."""
        ...

    def chunk_ids(self) -> set[str]:
        """Every live chunk id in the registry."""
        ...

    def vector_chunk_ids(self) -> set[str]:
        """Chunk ids that have a vector (strays as "<stray:id>"), for consistency checks."""
        ...

    def sentence_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors (float32, unit length) for the keys held."""
        ...

    def backfill_sentences(self) -> int:
        """Store sentence vectors for documents written without them; the number of documents."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counts: documents, chunks, parents, versions, soft/hard deletions, vectors, keyword index."""
        ...

    def flush(self) -> None:
        """Persist whatever is only in memory."""
        ...

    def compact(self) -> None:
        """Rewrite stored files so deleted or replaced content no longer lies anywhere on disk."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...
