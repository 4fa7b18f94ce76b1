"""HybridIndex: the public index facade. It validates input, embeds queries, fuses dense + keyword
candidates and applies PII-file housekeeping; every piece of state lives behind an `IndexBackend`:
`EmbeddedBackend` (SQLite docstore + Chroma + BM25 in one directory, see embedded.py) for a folder path, or
`MilvusBackend` (milvus_backend.py) for a Milvus location (`milvus://HOST:PORT/NAME`, `milvus:///FILE.db`).
A Milvus index takes no directory lock (processes share it through Milvus); its `path` is a local folder
for the files kept beside an index (threads, PII mappings) and `location` is its URL.

Soft delete (`delete_document(doc_id, soft=True)`) hides a document from every search path at once; within
the grace period `restore_document` re-indexes it, and `purge_deleted(older_than_days)` forgets it for good.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ragroute.tools import filters as F
from ragroute.tools.analyzer import Analyzer
from ragroute.tools.bm25 import BM25Index
from ragroute.tools.cache import CacheLevel, embedding_key
from ragroute.tools.embeddings import Embedder, embedder_name, get_embedder
from ragroute.tools.errors import ConfigError, IndexError_, InputError
from ragroute.tools.hybrid import validate_weights
from ragroute.tools.index import sentences as S
from ragroute.tools.index import stats as index_stats
from ragroute.tools.index.backend import IndexBackend, SearchScope
from ragroute.tools.index.config import DEFAULT_GRACE_DAYS, IndexConfig
from ragroute.tools.index.embedded import EmbeddedBackend
from ragroute.tools.index.lock import acquire_lock, release_lock
from ragroute.tools.index.pii_files import forget_pii
from ragroute.tools.index.records import prepare_batch
from ragroute.tools.index.search import Ranked, fuse, single, to_hits, validate_query
from ragroute.tools.types import AccessScope, Chunk, Parent, SearchHit
from ragroute.tools.vectorstore import VectorStore


class HybridIndex:
    """Dense + keyword (BM25) retrieval over one document store; metadata/ACL filters on both."""

    def __init__(
        self,
        config: IndexConfig | None = None,
        *,
        embedder: Embedder | None = None,
        query_cache: CacheLevel[Any] | None = None,
    ) -> None:
        """Open the index at config.path; `query_cache`: a shared text -> vector cache for query embeddings
        (the query path passes the process's one embedding cache; default: one of the index's own)."""
        self.config = config or IndexConfig()
        self.path = self.config.path
        self.location = self.config.location or self.path
        os.makedirs(self.path, exist_ok=True)
        self._locked = self.config.backend == "embedded"  # a Milvus index is shared, not locked
        if self._locked:
            acquire_lock(self.path, self.config.lock_timeout_s)
        self._closed = False
        try:
            self.embedder: Embedder = (
                embedder if embedder is not None else get_embedder(self.config.embedding)
            )
            self.analyzer = Analyzer()
            # repeated queries (classify's probe, retries, popular questions) skip the embedding model
            self._query_vectors: CacheLevel[Any] = (
                query_cache if query_cache is not None else CacheLevel(2048, name="query_embeddings")
            )
            # the embedder's name and "query" in the key: a shared cache also holds other models' vectors
            self._query_key_model = f"query:{getattr(self.embedder, 'name', self.config.embedding)}"
            self.backend: IndexBackend = self._open_backend()
        except BaseException:
            self._closed = True
            if self._locked:
                release_lock(self.path)
            raise
        if self.backend.stores_sentences:  # older documents get theirs from backfill_sentences()
            S.register(self)

    def _open_backend(self) -> IndexBackend:
        if self.config.backend == "milvus":
            from ragroute.tools.index.milvus_backend import MilvusBackend  # pymilvus only when asked for

            return MilvusBackend(self.config, self.embedder, self.analyzer)
        return EmbeddedBackend(self.config, self.embedder, self.analyzer)

    @classmethod
    def open(
        cls,
        path: str | None = None,
        *,
        embedder: Embedder | None = None,
        query_cache: CacheLevel[Any] | None = None,
        **config_kw: Any,
    ) -> HybridIndex:
        """Open (creating if needed) the index at `path`, a folder or a Milvus URL (default $RAGROUTE_INDEX,
        $RAGROUTE_INDEX_DIR or ~/.ragroute/index)."""
        if path is not None:
            config_kw["path"] = path
        try:
            config = IndexConfig(**config_kw)
        except TypeError as exc:
            raise ConfigError(f"bad index option: {exc}") from exc
        return cls(config, embedder=embedder, query_cache=query_cache)

    def _embedded(self) -> EmbeddedBackend:
        if not isinstance(self.backend, EmbeddedBackend):
            raise AttributeError(
                f"the index at {self.location} is on {type(self.backend).__name__}, which has no local BM25 "
                "index or Chroma store (search through the index instead)"
            )
        return self.backend

    @property
    def bm25(self) -> BM25Index:
        """The embedded backend's BM25 index (consistency checks read its ids)."""
        return self._embedded().bm25

    @property
    def store(self) -> VectorStore:
        """The embedded backend's Chroma collection (consistency checks and benchmarks)."""
        return self._embedded().store

    @property
    def version(self) -> int:
        """Bumps on every change to the index contents (persisted; use it as a cache key)."""
        return self.backend.version

    @property
    def uid(self) -> str:
        """A random id made when the index was created: a rebuilt index at the same path gets another."""
        return self.backend.uid

    def _check_open(self) -> None:
        if self._closed:
            raise IndexError_(f"index {self.location} is closed")

    def reconcile(self) -> dict[str, int]:
        """Make the vectors match the docstore: drop unknown ids, re-embed missing ones."""
        return self.backend.reconcile()

    # ------------------------------------------------------------------ writes
    def document_hash(self, doc_id: str) -> str | None:
        """Content hash stored at the document's last ingest, or None if unknown."""
        return self.backend.document_hash(doc_id)

    def upsert_document(
        self,
        doc_id: str,
        chunks: list[Chunk],
        parents: list[Parent],
        *,
        content_hash: str,
        doc_metadata: dict[str, Any] | None = None,
    ) -> str:
        """Add or replace one document atomically; returns "added", "updated" or "unchanged"."""
        return self.upsert_documents([(doc_id, chunks, parents, content_hash, doc_metadata or {})])[0]

    def upsert_documents(self, batch: Sequence[tuple[Any, ...]]) -> list[str]:
        """Batched upsert of (doc_id, chunks, parents, content_hash, doc_metadata) tuples; one embed call.

        Each document is atomic; the whole batch commits in one transaction.
        """
        self._check_open()
        self.backend.refresh()
        return self.backend.upsert_documents(prepare_batch(batch))

    def delete_document(self, doc_id: str, *, soft: bool = False) -> bool:
        """Remove a document from every search path; False if it was neither indexed nor soft-deleted.

        soft=True keeps its rows in the trash (restore_document / purge_deleted); a hard delete also
        forgets a soft-deleted copy and the document's stored PII mapping.
        """
        self._check_open()
        self.backend.refresh()
        outcome = self.backend.delete_document(doc_id, soft=soft)
        if not soft and (outcome.live or outcome.trashed):
            forget_pii(self.path, doc_id)
        return outcome.live or outcome.trashed

    def deleted_documents(self) -> list[dict[str, Any]]:
        """Soft-deleted documents: doc_id, n_chunks, metadata, updated_at, deleted_at (oldest first)."""
        self._check_open()
        return self.backend.deleted_documents()

    def restore_document(self, doc_id: str) -> bool:
        """Bring a soft-deleted document back (re-embedding its chunks); False if it is not in the trash."""
        self._check_open()
        return self.backend.restore_document(doc_id)

    def compact(self) -> None:
        """Leave no deleted or replaced text on disk (hard deletes and purges do it themselves; a redacting
        re-ingest calls it); costs a rewrite of the index files."""
        self._check_open()
        self.backend.compact()

    def purge_deleted(self, older_than_days: float = DEFAULT_GRACE_DAYS) -> list[str]:
        """Forget soft-deleted documents deleted more than `older_than_days` ago (0: all); their ids."""
        if (
            isinstance(older_than_days, bool)
            or not isinstance(older_than_days, int | float)
            or not (older_than_days >= 0)
        ):
            raise InputError(f"older_than_days must be a number >= 0, got {older_than_days!r}")
        self._check_open()
        ids = self.backend.purge_deleted(time.time() - float(older_than_days) * 86400.0)
        for doc_id in ids:
            forget_pii(self.path, doc_id)
        return ids

    # ------------------------------------------------------------------ sentence vectors
    def sentence_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors (float32, unit length) for the keys this index holds."""
        if self._closed:
            return {}
        return self.backend.sentence_vectors(keys)

    def backfill_sentences(self) -> int:
        """Sentence vectors for documents ingested before they were stored (or with them off); the number
        of documents filled. Cheap once done (a flag); ragroute.tools.ingest calls it after every ingest, so
        an index from an older version gets them on its next `ragroute ingest`, not on open: reading every
        chunk again takes as long as embedding it did."""
        self._check_open()
        return self.backend.backfill_sentences()

    def flush(self) -> None:
        """Persist whatever the backend keeps only in memory (the BM25 snapshot)."""
        self.backend.flush()

    # ------------------------------------------------------------------ reads
    def _begin(
        self,
        query: str,
        k: int,
        filters: dict[str, Any] | None,
        candidate_k: int | None,
        access: AccessScope | None,
    ) -> tuple[int, SearchScope]:
        """Checks shared by every search (open index, query/k, filter syntax); candidate count and scope."""
        self._check_open()
        n = validate_query(query, k, candidate_k, self.config.candidate_k)
        node = F.parse_filter(filters)
        self.backend.refresh()
        return n, SearchScope(filters, node, access)

    def _query_vector(self, query: str) -> list[float]:
        key = embedding_key(self._query_key_model, query)
        return list(self._query_vectors.get_or_compute(key, lambda: list(self.embedder.embed_query(query))))

    def query_vector(self, query: str) -> list[float]:
        """The query's embedding, from the query-vector cache when a search already computed it."""
        return self._query_vector(query)

    def _dense(self, query: str, n: int, scope: SearchScope) -> list[tuple[str, float]]:
        return self.backend.dense_search(lambda: self._query_vector(query), n, scope)

    def _hits(self, ranked: list[Ranked]) -> list[SearchHit]:
        if not ranked:
            return []
        return to_hits(ranked, self.backend.get_chunks([r[0] for r in ranked]))

    def _fuse(
        self,
        dense: list[tuple[str, float]],
        kw: list[tuple[str, float]],
        k: int,
        weights: dict[str, float] | None,
    ) -> list[SearchHit]:
        doc_types = self.backend.doc_types(list(dict.fromkeys(cid for cid, _ in [*dense, *kw])))
        return self._hits(fuse(dense, kw, k, self.config, weights, doc_types))

    def dense_search(
        self,
        query: str,
        k: int = 10,
        *,
        filters: dict[str, Any] | None = None,
        access: AccessScope | None = None,
        candidate_k: int | None = None,
    ) -> list[SearchHit]:
        """Semantic search only (same filters/ACL as `search`)."""
        _, scope = self._begin(query, k, filters, candidate_k, access)
        pairs = self._dense(query, k, scope)
        return self._hits(single("dense", pairs, k))

    def keyword_search(
        self,
        query: str,
        k: int = 10,
        *,
        filters: dict[str, Any] | None = None,
        access: AccessScope | None = None,
        candidate_k: int | None = None,
    ) -> list[SearchHit]:
        """BM25 search only (same filters/ACL as `search`)."""
        _, scope = self._begin(query, k, filters, candidate_k, access)
        pairs = self.backend.keyword_search(query, k, scope)
        return self._hits(single("bm25", pairs, k))

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filters: dict[str, Any] | None = None,
        access: AccessScope | None = None,
        weights: dict[str, float] | None = None,
        candidate_k: int | None = None,
    ) -> list[SearchHit]:
        """Hybrid search: dense + BM25 candidates (filters and ACL applied before the cut), fused by RRF."""
        if weights is not None:
            validate_weights(weights)
        n, scope = self._begin(query, k, filters, candidate_k, access)
        dense = self._dense(query, n, scope)
        kw = self.backend.keyword_search(query, n, scope)
        return self._fuse(dense, kw, k, weights)

    async def asearch(
        self,
        query: str,
        k: int = 10,
        *,
        filters: dict[str, Any] | None = None,
        access: AccessScope | None = None,
        weights: dict[str, float] | None = None,
        candidate_k: int | None = None,
    ) -> list[SearchHit]:
        """`search` with the dense and keyword paths running concurrently in threads."""
        if weights is not None:
            validate_weights(weights)
        n, scope = self._begin(query, k, filters, candidate_k, access)
        dense, kw = await asyncio.gather(
            asyncio.to_thread(self._dense, query, n, scope),
            asyncio.to_thread(self.backend.keyword_search, query, n, scope),
        )
        return await asyncio.to_thread(self._fuse, dense, kw, k, weights)

    def get_chunk(self, chunk_id: str, *, access: AccessScope | None = None) -> Chunk | None:
        """The stored chunk (metadata included), or None (also when `access` may not see it)."""
        self._check_open()
        return self.backend.get_chunk(chunk_id, access)

    def get_parent(self, parent_id: str, *, access: AccessScope | None = None) -> Parent | None:
        """The stored parent section, or None (also when `access` may see none of its chunks)."""
        self._check_open()
        return self.backend.get_parent(parent_id, access)

    def chunk_ids(self) -> set[str]:
        """Every chunk id in the docstore (the source of truth)."""
        return self.backend.chunk_ids()

    def vector_chunk_ids(self) -> set[str]:
        """Chunk ids that have a vector (for consistency checks)."""
        return self.backend.vector_chunk_ids()

    def document_metadata(self, doc_id: str) -> dict[str, Any] | None:
        """The stored document-level metadata of `doc_id`, or None if no such (live) document exists."""
        self._check_open()
        return self.backend.document_metadata(doc_id)

    def can_read_document(self, doc_id: str, access: AccessScope | None) -> bool:
        """True when `doc_id` is live or soft-deleted and its ACL admits `access` (the trash keeps the ACL).

        Write paths ask this before a caller replaces, deletes or restores a document: one it cannot
        read must be treated exactly like one that does not exist."""
        self._check_open()
        live = self.backend.document_metadata(doc_id)
        trashed = [d["metadata"] for d in self.backend.deleted_documents() if d["doc_id"] == doc_id]
        metas = [m for m in (live, *trashed) if m is not None]
        return bool(metas) and all(F.acl_allows(m, access) for m in metas)

    def list_documents(self) -> list[dict[str, Any]]:
        """One dict per document: doc_id, content_hash, n_chunks, metadata, updated_at."""
        self._check_open()
        return self.backend.list_documents()

    def stats(self, access: AccessScope | None = None) -> dict[str, Any]:
        """Counts and configuration, for the CLI and health checks; a restricted `access` gets only the
        counts of the documents it can read (no totals, paths or versions that reveal the others)."""
        self._check_open()
        if access is not None and not access.unrestricted:
            return index_stats.visible_report(
                self.backend.list_documents(),
                self.backend.deleted_documents(),
                access,
                embedding=embedder_name(self.embedder),
            )
        counts = self.backend.stats()
        out = index_stats.report(
            self.config,
            self.version,
            counts,
            query_cache=self._query_vectors.stats(),
            embedding=embedder_name(self.embedder),
        )
        if self.config.backend == "milvus":  # Chroma settings mean nothing there
            out.pop("chroma_mode", None)
            out.pop("collection", None)
            out["location"] = self.location
        return out

    # ------------------------------------------------------------------ LangChain
    def as_vectorstore(self, access: AccessScope | None = None, *, all_access: bool = False) -> Any:
        """This index as a LangChain `VectorStore` (add_documents, similarity_search, delete, get_by_ids,
        as_retriever) searching with `access` bound in: none means public documents only, all_access=True
        every document. See ragroute.tools.lc_vectorstore."""
        from ragroute.tools.lc_vectorstore import IndexVectorStore  # langchain_core only when asked for

        return IndexVectorStore(self, access=access, all_access=all_access)

    def as_retriever(
        self, access: AccessScope | None = None, *, all_access: bool = False, **kwargs: Any
    ) -> Any:
        """`as_vectorstore(access, all_access=...).as_retriever(**kwargs)`: a LangChain retriever, e.g.
        `as_retriever(search_kwargs={"k": 5, "filter": {"doc_type": "faq"}})`."""
        return self.as_vectorstore(access, all_access=all_access).as_retriever(**kwargs)

    def close(self) -> None:
        """Flush what is in memory, close the backend and release the lock (idempotent)."""
        if self._closed:
            return
        S.unregister(self)
        try:
            self.flush()
        finally:
            self._closed = True
            self.backend.close()
            if self._locked:
                release_lock(self.path)

    def __enter__(self) -> HybridIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort for forgotten indexes
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:
            pass


def open_index(path: str | Path | None = None, **config_kw: Any) -> HybridIndex:
    """Convenience alias for `HybridIndex.open`."""
    return HybridIndex.open(str(path) if path is not None else None, **config_kw)
