"""EmbeddedBackend: the index in one directory, a SQLite docstore (source of truth) + Chroma vectors + BM25.

Layout of an index directory::

    docstore.sqlite   documents (content hash, metadata), chunks (text, metadata, tokens, vector id), parents,
                      meta (version, uid, last update, embedder, analyzer), trash_* (soft-deleted documents),
                      sentences (float16 sentence vectors for the offline reranker; see sentences.py)
    chroma/           Chroma persistent data (mode "persistent"; in mode "http" vectors live on the server)
    bm25.json         BM25 snapshot tagged with the index version (rebuilt from SQLite tokens when stale)
    lock              held with flock while a process has the index open (lock.py)

Consistency: every chunk's vector id is ``<chunk_id>#<hash of embedded text + metadata>``, so changed chunks
get new vector ids. An upsert (1) writes the new vectors to Chroma, (2) swaps the document's rows in one
SQLite transaction that also bumps `version`, (3) deletes the old vectors. A process killed at any point
leaves SQLite at the previous or the next state; `reconcile()` deletes Chroma ids SQLite does not know and
re-embeds ids SQLite knows but Chroma lacks, so Chroma, SQLite and BM25 always agree on what exists.

Chroma opens and is reconciled at open, before a process's threads use it. With `lazy_vectors=True` (the
CLI's stats, delete, restore and purge) it opens lazily instead (importing it and opening its client cost
about a second): the first operation that reads or writes vectors (dense search, upsert, hard delete,
compaction, `store`) opens it and reconciles it before it is used, so commands that touch only SQLite
never wait for it. Mode "http" always opens at once, so an unreachable server is an error at open.
A soft delete moves a document's rows into the trash_* tables and drops its BM25 entries and, if Chroma is
open in this process, its vectors; otherwise they are strays the reconcile at Chroma's opening (or before a
compaction) drops. Either way no search path can see it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ragroute.tools import filters as F
from ragroute.tools.analyzer import Analyzer
from ragroute.tools.bm25 import BM25Index
from ragroute.tools.embeddings import Embedder, embedder_name
from ragroute.tools.errors import ConfigError, IndexError_, InputError
from ragroute.tools.index import sentences as S
from ragroute.tools.index.backend import Deletion, SearchScope
from ragroute.tools.index.config import IndexConfig
from ragroute.tools.index.docstore import DocStore
from ragroute.tools.index.lock import chroma_gate
from ragroute.tools.index.reconcile import reconcile
from ragroute.tools.index.records import ChunkRecord, DocumentWrite, embed_text, prepare_batch
from ragroute.tools.index.scrub import compact_sqlite, scrub_chroma_log
from ragroute.tools.index.search import ScopeCache, in_scope
from ragroute.tools.index.stats import version_summary
from ragroute.tools.types import AccessScope, Chunk, Parent
from ragroute.tools.vectorstore import VectorStore

log = logging.getLogger("ragroute.tools.index")

_BACKFILL_BATCH = 200  # documents re-read per forward pass when filling in sentence vectors
# index path -> instances in this process whose Chroma is open: a soft delete leaves vectors to the next
# opening's reconcile only while none is (flock keeps other processes out; mode "http" always opens)
_CHROMA_OPEN: Counter[str] = Counter()
_CHROMA_OPEN_GUARD = threading.Lock()


class EmbeddedBackend:
    """IndexBackend over one directory (SQLite + Chroma + BM25), consistent across crashes."""

    def __init__(self, config: IndexConfig, embedder: Embedder, analyzer: Analyzer) -> None:
        self.config = config
        self.path = config.path
        # _lock guards SQLite and the in-memory maps (held briefly); _write_lock serializes writers, so
        # searches keep running while a batch is being embedded
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self.embedder = embedder
        self.analyzer = analyzer
        self.docstore = DocStore(self.path)
        # freed pages are zeroed, so a deleted or replaced row's text does not linger in the file
        self.docstore.db.execute("PRAGMA secure_delete=ON")
        self._store: VectorStore | None = None  # opened and reconciled by the `store` property
        self._key = os.path.realpath(self.path)
        self._gate = chroma_gate(self.path)
        self.bm25 = BM25Index()
        self._scopes = ScopeCache()
        self._check_embedder()
        # sentence vectors come out of the chunk's own forward pass (see sentences.py), so only the offline
        # sentence model, and only an embedder that exposes that pass, stores them
        self.stores_sentences = (
            config.sentence_vectors
            and embedder_name(embedder) == S.SENTENCE_MODEL
            and callable(getattr(embedder, "embed_with_spans", None))
        )
        try:
            self._load_memory()
            if config.chroma_mode == "http" or not config.lazy_vectors:
                self.reconcile()
        except BaseException:
            self.docstore.close()
            raise

    # ------------------------------------------------------------------ state
    @property
    def version(self) -> int:
        """Bumps on every change to the index contents (persisted)."""
        # under the lock: a writer bumps the version inside its transaction and updates the in-memory
        # maps before releasing it, so a reader never pairs the new version with the old contents
        with self._lock:
            return self.docstore.version()

    @property
    def uid(self) -> str:
        """A random id made when the index was created."""
        return self._uid

    def _check_embedder(self) -> None:
        name = embedder_name(self.embedder)
        # a declared size spares loading a local model just to open the index (stats, deletes)
        declared = getattr(self.embedder, "dimension", None)
        dim = declared if isinstance(declared, int) else len(self.embedder.embed_query("dimension probe"))
        stored_dim = self.docstore.meta_get("embedding_dim")
        stored_name = self.docstore.meta_get("embedding")
        has_chunks = self.docstore.has_chunks()
        if has_chunks and stored_dim is not None and int(stored_dim) != dim:
            raise ConfigError(
                f"index {self.path} was built with embedding {stored_name!r} ({stored_dim} dims) but "
                f"{name!r} gives {dim} dims; open it with embedding={stored_name!r} or rebuild it"
            )
        if has_chunks and stored_name and stored_name != name:
            log.warning("index %s was built with embedding %r, now using %r", self.path, stored_name, name)
        self._dim = dim
        self._uid = self.docstore.record_embedder(name, dim)

    def _load_memory(self) -> None:
        """Load per-chunk metadata and the vector-id map; retokenize if the analyzer changed."""
        self._meta: dict[str, dict[str, Any]] = {}
        self._vid_to_cid: dict[str, str] = {}
        self._cid_to_vid: dict[str, str] = {}
        for cid, vid, meta in self.docstore.chunk_map():
            self._meta[cid] = meta
            self._vid_to_cid[vid] = cid
            self._cid_to_vid[cid] = vid
        sig = self.analyzer.signature
        if self.docstore.meta_get("analyzer") != sig:
            self.docstore.retokenize(lambda text, meta: self.analyzer.tokens(embed_text(text, meta)), sig)
        self._loaded_version = self.version
        snap = os.path.join(self.path, "bm25.json")
        if not self.bm25.load(snap, version=self._loaded_version, signature=sig):
            self.bm25.clear()
            self.bm25.add_many(self.docstore.chunk_tokens())
            self.bm25.save(snap, version=self._loaded_version, signature=sig)
        self._bm25_saved = self._loaded_version
        self._scopes.clear()

    def refresh(self) -> None:
        """Reload in-memory state if another instance in this process changed the index."""
        if self.version != self._loaded_version:
            with self._lock:
                if self.version != self._loaded_version:
                    self._load_memory()

    def _after_change(self) -> None:
        self._loaded_version = self.version
        self._scopes.clear()

    @property
    def store(self) -> VectorStore:
        """The Chroma collection, opened and reconciled with SQLite on first use."""
        store = self._store
        if store is None:
            self.reconcile()
            store = self._store
            assert store is not None
        return store

    def reconcile(self) -> dict[str, int]:
        """Make Chroma hold exactly SQLite's vectors: drop unknown ids, re-embed missing (opens Chroma)."""
        with self._write_lock, self._lock:
            store = self._store or VectorStore(
                mode=self.config.chroma_mode,
                path=os.path.join(self.path, "chroma"),
                host=self.config.chroma_host,
                port=self.config.chroma_port,
                collection=self.config.collection,
            )
            try:
                counts = reconcile(self.docstore, store, self.embedder, set(self._vid_to_cid), self.path)
            except BaseException:
                if self._store is None:
                    store.close()
                raise
            if self._store is None:  # published once reconciled: `store` readers skip the locks
                with _CHROMA_OPEN_GUARD:
                    _CHROMA_OPEN[self._key] += 1
                self._store = store
            return counts

    def _chroma_open_here(self) -> bool:
        with _CHROMA_OPEN_GUARD:
            return _CHROMA_OPEN[self._key] > 0

    # ------------------------------------------------------------------ document registry
    def document_hash(self, doc_id: str) -> str | None:
        """Content hash stored at the document's last ingest, or None if unknown."""
        return self.docstore.document_hash(doc_id)

    def document_metadata(self, doc_id: str) -> dict[str, Any] | None:
        """Document-level metadata of a live document, or None."""
        with self._lock:
            return self.docstore.document_metadata(doc_id)

    def list_documents(self) -> list[dict[str, Any]]:
        """Live documents: doc_id, content_hash, n_chunks, metadata, updated_at."""
        with self._lock:
            return self.docstore.list_documents()

    # ------------------------------------------------------------------ writes
    def upsert_documents(self, docs: Sequence[DocumentWrite]) -> list[str]:
        """Add or replace documents; "added", "updated" or "unchanged" per document."""
        with self._write_lock:
            return self._upsert_locked(docs)

    def _upsert_locked(self, docs: Sequence[DocumentWrite]) -> list[str]:
        ds = self.docstore
        with self._lock:
            statuses: list[str] = []
            todo: list[tuple[DocumentWrite, list[tuple[str, str]], set[str]]] = []
            for doc in docs:
                old = ds.document_chunks(doc.doc_id)
                stored_hash = ds.document_hash(doc.doc_id)
                old_vids = {v for _, v in old}
                other_owner = ds.owner_elsewhere(doc.doc_id, [r.chunk_id for r in doc.chunks])
                if other_owner:
                    raise InputError(f"chunk id {other_owner!r} already belongs to another document")
                if stored_hash is not None and stored_hash == doc.content_hash:
                    if old_vids == {r.vector_id for r in doc.chunks}:
                        statuses.append("unchanged")
                        continue
                statuses.append("updated" if stored_hash is not None else "added")
                todo.append((doc, old, old_vids))
            if not todo:
                return statuses
            known_vids = set(self._vid_to_cid)
        # 1. new vectors first: SQLite learns their ids in step 2, reconcile undoes a crash before that
        fresh = [r for doc, *_ in todo for r in doc.chunks if r.vector_id not in known_vids]
        late: dict[str, bytes] = {}
        if fresh:
            embs, late = S.embed_chunks(self.embedder, fresh, with_sentences=self.stores_sentences)
            if len(embs) != len(fresh) or any(len(e) != self._dim for e in embs):
                raise IndexError_(f"embedder returned {len(embs)} vectors of the wrong size for {len(fresh)}")
            self.store.upsert(
                [r.vector_id for r in fresh],
                embs,
                [{**F.chroma_metadata(r.meta), "chunk_id": r.chunk_id} for r in fresh],
            )
        sentences = self._sentence_rows([(doc.doc_id, doc.chunks) for doc, *_ in todo], late)
        tokens = {r.chunk_id: self.analyzer.tokens(r.embed_text) for doc, *_ in todo for r in doc.chunks}
        # 2. one transaction swaps every document's rows and bumps the version
        with self._lock:
            try:
                ds.replace_documents(
                    [doc for doc, *_ in todo], tokens, sentences, sentences_stored=self.stores_sentences
                )
            except BaseException:
                if fresh:  # best effort; reconcile() on the next open removes them otherwise
                    self.store.delete([r.vector_id for r in fresh])
                raise
            # 3. in-memory views, then drop the vectors nobody references any more
            stale: list[str] = []
            for doc, old, old_vids in todo:
                self._forget_chunks(old)
                for r in doc.chunks:
                    self._meta[r.chunk_id] = r.meta
                    self._vid_to_cid[r.vector_id] = r.chunk_id
                    self._cid_to_vid[r.chunk_id] = r.vector_id
                self.bm25.add_many((r.chunk_id, tokens[r.chunk_id]) for r in doc.chunks)
                stale += sorted(old_vids - {r.vector_id for r in doc.chunks})
            self._after_change()
        if stale:
            self.store.delete(stale)
        return statuses

    def _forget_chunks(self, old: list[tuple[str, str]]) -> None:
        """Drop (chunk_id, vector_id) pairs from the in-memory maps and the BM25 index."""
        for cid, vid in old:
            self._meta.pop(cid, None)
            self._vid_to_cid.pop(vid, None)
            self._cid_to_vid.pop(cid, None)
        self.bm25.remove_many(cid for cid, _ in old)

    def delete_document(self, doc_id: str, *, soft: bool) -> Deletion:
        """Remove a document from every search path (soft: into the trash)."""
        with self._write_lock, self._lock:
            old = self.docstore.document_chunks(doc_id)
            outcome = self.docstore.delete_document(doc_id, soft=soft)
            if outcome.live:
                self._forget_chunks(old)
                if not soft or self._chroma_open_here():  # else the next opening's reconcile drops them
                    self.store.delete([vid for _, vid in old])
                self._after_change()
        if not soft and (outcome.live or outcome.trashed):
            self.compact()
        return outcome

    def deleted_documents(self) -> list[dict[str, Any]]:
        """Soft-deleted documents, oldest deletion first."""
        with self._lock:
            return self.docstore.deleted_documents()

    def restore_document(self, doc_id: str) -> bool:
        """Re-index a soft-deleted document (re-embedding its chunks); False if it is not in the trash."""
        with self._write_lock:
            with self._lock:
                trashed = self.docstore.trashed(doc_id)
            if trashed is None:
                return False
            if self.document_hash(doc_id) is not None:  # re-ingested meanwhile: the live copy wins
                return False
            content_hash, metadata, chunks, parents = trashed
            self.refresh()
            # the upsert clears the trash rows in its own transaction
            self.upsert_documents(prepare_batch([(doc_id, chunks, parents, content_hash, metadata)]))
            return True

    def purge_deleted(self, cutoff: float) -> list[str]:
        """Forget documents soft-deleted at or before `cutoff`; their ids."""
        with self._write_lock, self._lock:
            purged = self.docstore.purge(cutoff)
        if purged:
            self.compact()
        return purged

    # ------------------------------------------------------------------ reads
    def dense_search(
        self, query_vector: Callable[[], Sequence[float]], n: int, scope: SearchScope
    ) -> list[tuple[str, float]]:
        """Nearest `n` chunks in `scope` by cosine similarity (Chroma `where`, re-checked in Python)."""
        if not self._vid_to_cid:
            return []
        where = F.compile_where(scope.node, scope.access)
        store, vector = self.store, query_vector()
        with self._gate.shared():  # not while compact() rewrites Chroma's files (disk I/O errors)
            res = store.query(vector, n, where=where)
        return in_scope(res, self._vid_to_cid, self._meta, scope)

    def _scope_members(self, scope: SearchScope) -> tuple[np.ndarray, set[str]]:
        with self._lock:  # upserts swap _meta entries under the same lock
            allowed = {cid for cid, meta in self._meta.items() if F.matches(scope.node, meta, scope.access)}
            return self.bm25.mask_for(allowed), allowed

    def keyword_search(self, query: str, n: int, scope: SearchScope) -> list[tuple[str, float]]:
        """Best `n` BM25 matches in `scope` (filter + ACL applied before the cut)."""
        allowed = self._scopes.allowed(scope, self._loaded_version, lambda: self._scope_members(scope))
        tokens = self.analyzer.tokens(query)
        if allowed is None:
            return self.bm25.search(tokens, n)
        try:
            return self.bm25.search(tokens, n, allowed=allowed[0])
        except ValueError:  # a concurrent upsert resized the BM25 index after the mask was built
            return self.bm25.search(tokens, n, allowed=allowed[1])

    def doc_types(self, chunk_ids: Sequence[str]) -> dict[str, str | None]:
        """Each chunk's `doc_type` metadata."""
        return {cid: (self._meta.get(cid) or {}).get("doc_type") for cid in chunk_ids}

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks by id (ids deleted meanwhile are absent); no access check."""
        with self._lock:
            rows = self.docstore.chunk_rows(chunk_ids)
        return {
            cid: Chunk(chunk_id=cid, doc_id=d, text=t, metadata=self._meta.get(cid, {}), parent_id=p)
            for cid, (d, t, p) in rows.items()
        }

    def get_chunk(self, chunk_id: str, access: AccessScope | None) -> Chunk | None:
        """One stored chunk, or None (also when `access` may not see it)."""
        with self._lock:
            chunk = self.docstore.get_chunk(chunk_id)
        return chunk if chunk is not None and F.acl_allows(chunk.metadata, access) else None

    def get_parent(self, parent_id: str, access: AccessScope | None) -> Parent | None:
        """One parent section, or None (also when `access` may see none of its chunks)."""
        with self._lock:
            parent = self.docstore.get_parent(parent_id)
            if parent is None:
                return None
            if access is not None and not access.unrestricted:
                metas = self.docstore.parent_chunk_metadata(parent_id)
                if not any(F.acl_allows(m, access) for m in metas):
                    return None
        return parent

    def chunk_ids(self) -> set[str]:
        """Every chunk id in the docstore (the source of truth)."""
        with self._lock:
            return self.docstore.chunk_ids()

    def vector_chunk_ids(self) -> set[str]:
        """Chunk ids that have a vector in Chroma (strays as "<stray:id>")."""
        return {self._vid_to_cid.get(v, f"<stray:{v}>") for v in self.store.ids()}

    def vector_ids(self) -> dict[str, str]:
        """chunk_id -> its Chroma vector id (consistency checks and benchmarks read vectors by it)."""
        with self._lock:
            return dict(self._cid_to_vid)

    # ------------------------------------------------------------------ sentence vectors
    def _stored_blobs(self, keys: list[str]) -> dict[str, bytes]:
        with self._lock:
            return self.docstore.sentence_blobs(keys)

    def _sentence_rows(
        self, docs: list[tuple[str, list[ChunkRecord]]], late: dict[str, bytes]
    ) -> dict[str, list[tuple[str, str, bytes]]]:
        if not self.stores_sentences or not docs:
            return {}
        return S.sentence_rows(docs, late, self._stored_blobs)

    def sentence_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors (float32, unit length) for the keys this index holds."""
        return {k: S.decode(blob) for k, blob in self._stored_blobs(keys).items()}

    def backfill_sentences(self) -> int:
        """Sentence vectors for documents stored without them; the number of documents filled (a flag
        makes it free once done)."""
        ds = self.docstore
        if not self.stores_sentences or ds.meta_get("sentences_complete") == "1":
            return 0
        with self._write_lock:
            with self._lock:
                docs = ds.documents_without_sentences()
            if docs:
                log.info("computing sentence vectors for %d documents of %s (once)", len(docs), self.path)
            for start in range(0, len(docs), _BACKFILL_BATCH):
                part = docs[start : start + _BACKFILL_BATCH]
                with self._lock:
                    found: dict[str, list[ChunkRecord]] = {d: [] for d in part}
                    for doc_id, text, meta in ds.chunk_texts(part):
                        found[doc_id].append(ChunkRecord("", "", 0, text, meta, None, embed_text(text, meta)))
                records = [r for rows in found.values() for r in rows]
                _, late = S.embed_chunks(self.embedder, records, with_sentences=True)
                rows = self._sentence_rows(list(found.items()), late)
                with self._lock:
                    ds.add_sentences([row for doc_rows in rows.values() for row in doc_rows])
            with self._lock:
                ds.meta_set("sentences_complete", 1)
        return len(docs)

    # ------------------------------------------------------------------ housekeeping
    def stats(self) -> dict[str, Any]:
        """Docstore counts, version families, vectors, BM25 and embedding size (never opens Chroma)."""
        with self._lock:
            counts = self.docstore.counts()
            counts["versions"] = version_summary(self._meta.values())
        # Chroma's count when it is open; otherwise SQLite's vector ids, which reconcile makes Chroma hold
        counts["vectors"] = self._store.count() if self._store is not None else len(self._vid_to_cid)
        counts["bm25"] = self.bm25.stats()
        counts["embedding_dim"] = self._dim
        return counts

    def flush(self) -> None:
        """Persist the BM25 snapshot if it is behind the index version."""
        with self._lock:
            if self._bm25_saved != self._loaded_version:
                self.bm25.save(
                    os.path.join(self.path, "bm25.json"),
                    version=self._loaded_version,
                    signature=self.analyzer.signature,
                )
                self._bm25_saved = self._loaded_version

    def compact(self) -> None:
        """Rewrite the index files so no deleted or replaced text stays on disk (see scrub.py); costs a copy
        of each SQLite file, so it runs after hard deletes, purges and redacting re-ingests only."""
        with self._write_lock, self._lock:
            # vectors a soft delete left to reconcile (here or in another instance) go before the scrub
            self.reconcile()
            self.flush()  # the BM25 snapshot must not keep the tokens of deleted chunks either
            compact_sqlite(self.docstore.db)
            if self.config.chroma_mode == "persistent":
                with self._gate.exclusive():
                    scrub_chroma_log(os.path.join(self.path, "chroma"), self.config.collection)

    def close(self) -> None:
        """Close SQLite and the Chroma client (if it was opened)."""
        self.docstore.close()
        store, self._store = self._store, None
        if store is not None:
            with _CHROMA_OPEN_GUARD:
                _CHROMA_OPEN[self._key] -= 1
            store.close()
