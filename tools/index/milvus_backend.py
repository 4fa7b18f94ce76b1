"""MilvusBackend: every piece of index state in Milvus (collections in milvus_schema.py), so any number of
stateless processes can serve one index (a server or cluster, `milvus-lite server`, or a Lite file).

Consistency without transactions. Each write of a document gets a fresh generation id (milvus_registry.py)
and goes in this order:
  1. insert its chunk, parent and sentence rows tagged with the new generation (invisible: see below);
  2. commit: upsert the document's registry row naming the new generation (one row, so atomic), then
     give the index a new version;
  3. delete the rows of the generation the registry named before (step 2's read).
Every read keeps only rows whose generation is the one the registry commits for a live document (searches
filter ACL, metadata and the soft-delete flag server-side, then check the generations of the hits they
return, fetching more when some drop out). So a process killed anywhere leaves each document at its old or
its new generation, never half of each; the leftover rows are invisible and `reconcile()` deletes rows of
uncommitted generations older than `RECONCILE_GRACE_S`. Two processes writing one document both insert
their own generation and the last registry upsert wins; each deletes only the generation it replaced, so
the winner's rows are never deleted (the loser's become leftovers for reconcile). A write that spends more
than half the grace before its commit aborts, so reconcile never deletes rows of a write still going on.
Soft delete flips the registry row to "trash" first (hidden at once), then marks the rows `deleted` (a hint
that keeps them out of the server-side top k); restore clears the marks first, then flips the row back, so
it needs no re-embedding. Reads and writes use consistency level Strong (read-your-writes across
processes; Bounded would let a replica serve a search that misses a just-acknowledged write).

Not here, by nature of a remote engine: the directory lock (`lazy_vectors`, `index.bm25`, `index.store`);
`compact()` asks Milvus to compact (asynchronous on a server: deleted rows leave its storage when Milvus's
compaction finishes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import cachetools
import numpy as np
from ragroute.tools import filters as F
from ragroute.tools.analyzer import Analyzer
from ragroute.tools.embeddings import Embedder, embedder_name
from ragroute.tools.errors import ConfigError, IndexError_, InputError
from ragroute.tools.index import milvus_filters as MF
from ragroute.tools.index import milvus_registry as R
from ragroute.tools.index import milvus_upkeep as U
from ragroute.tools.index import sentences as S
from ragroute.tools.index.backend import Deletion, SearchScope
from ragroute.tools.index.config import IndexConfig
from ragroute.tools.index.lock import SharedExclusive
from ragroute.tools.index.milvus_collections import Collections
from ragroute.tools.index.milvus_location import parse_location
from ragroute.tools.index.milvus_rewrite import rewrite
from ragroute.tools.index.milvus_rows import chunk_rows, parent_rows, sentence_rows_of
from ragroute.tools.index.milvus_schema import create_collection, ensure_collections
from ragroute.tools.index.records import DocumentWrite
from ragroute.tools.types import AccessScope, Chunk, Parent

log = logging.getLogger("ragroute.tools.index")
_GATES: dict[str, SharedExclusive] = {}
_GATES_GUARD = threading.Lock()

RECONCILE_GRACE_S = 3600.0  # uncommitted generations younger than this may belong to a write in progress
MAX_LIMIT = 16384  # Milvus's largest top k
_HIT_FIELDS = ["chunk_id", "doc_id", "gen", "doc_type"]


def connect(uri: str, url: str) -> Any:
    """A MilvusClient for `uri`; ConfigError without pymilvus, IndexError_ when Milvus is unreachable."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ConfigError("the Milvus backend needs pymilvus: pip install 'ragroute[milvus]'") from None
    try:
        return MilvusClient(uri, token=os.environ.get("MILVUS_TOKEN", ""), timeout=10)
    except Exception as exc:  # pymilvus raises MilvusException or grpc errors; both mean "cannot reach"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not uri.startswith(("http://", "https://")):  # a Lite file: one process holds its lock
            first += " (is the file open in another process? a Milvus Lite file serves one process)"
        raise IndexError_(f"cannot reach Milvus at {url}: {first}") from None


def _vids_digest(doc: DocumentWrite) -> str:
    return hashlib.sha1("\n".join(sorted(r.vector_id for r in doc.chunks)).encode()).hexdigest()[:32]


class MilvusBackend:
    """IndexBackend with all state in Milvus (see the module docstring for the write protocol)."""

    def __init__(self, config: IndexConfig, embedder: Embedder, analyzer: Analyzer) -> None:
        self.config = config
        where = parse_location(config.location)
        self.location = where.url
        self.embedder, self.analyzer = embedder, analyzer
        self._write_lock = threading.RLock()  # one writer per process; other processes: see the docstring
        self._doc_types: cachetools.LRUCache[str, str | None] = cachetools.LRUCache(100_000)
        self._lite_file = where.lite_file
        with _GATES_GUARD:  # one per location: searches share it, a Lite rewrite takes it alone
            self._gate = _GATES.setdefault(where.url, SharedExclusive())
        self.client = connect(where.uri, where.url)
        try:
            name = embedder_name(embedder)
            declared = getattr(embedder, "dimension", None)
            self._dim = (
                declared if isinstance(declared, int) else len(embedder.embed_query("dimension probe"))
            )
            self.names = ensure_collections(self.client, where.name, self._dim)
            self.cols = Collections(self.client, self.names)
            self.registry = R.Registry(self.client, self.names["documents"], self.names["meta"])
            self._uid = self.registry.ensure_uid()
            stored = self.registry.meta_get("embedding")
            if stored and stored != name:
                log.warning(
                    "Milvus index %s was built with embedding %r, now using %r", self.location, stored, name
                )
            if not stored:
                self.registry.meta_set({"embedding": name, "embedding_dim": self._dim})
        except BaseException:
            self.client.close()
            raise
        self.stores_sentences = (
            config.sentence_vectors
            and name == S.SENTENCE_MODEL
            and callable(getattr(embedder, "embed_with_spans", None))
        )

    # ------------------------------------------------------------------ state
    @property
    def version(self) -> int:
        """The version counter in the meta collection (one query)."""
        return self.registry.version()

    @property
    def uid(self) -> str:
        """A random id made when the index was created."""
        return self._uid

    def refresh(self) -> None:
        """Nothing to reload: every read goes to Milvus."""

    def reconcile(self, min_age_s: float = RECONCILE_GRACE_S) -> dict[str, int]:
        """Delete rows of uncommitted generations older than `min_age_s` and repair soft-delete marks."""
        with self._write_lock:
            return U.reconcile(self.cols, self.registry, min_age_s, self.location)

    # ------------------------------------------------------------------ document registry
    def document_hash(self, doc_id: str) -> str | None:
        """Content hash of a live document, or None."""
        row = self.registry.row(doc_id)
        return row["content_hash"] if row and row["state"] == R.LIVE else None

    def document_metadata(self, doc_id: str) -> dict[str, Any] | None:
        """Document-level metadata of a live document, or None."""
        row = self.registry.row(doc_id)
        return (row["metadata"] or {}) if row and row["state"] == R.LIVE else None

    def list_documents(self) -> list[dict[str, Any]]:
        """Live documents by doc_id."""
        return [R.public_doc(r) for r in self.registry.all_rows(R.LIVE)]

    # ------------------------------------------------------------------ writes
    def upsert_documents(self, docs: Sequence[DocumentWrite]) -> list[str]:
        """Add or replace documents, each atomically (see the module docstring)."""
        with self._write_lock:
            return self._upsert(docs)

    def _check_owners(self, docs: Sequence[DocumentWrite]) -> None:
        owner = {r.chunk_id: doc.doc_id for doc in docs for r in doc.chunks}
        found = self.cols.query_in("chunks", "chunk_id", list(owner), _HIT_FIELDS)
        others = [r for r in found if r["doc_id"] != owner[r["chunk_id"]]]
        committed = self.registry.committed([r["doc_id"] for r in others]) if others else {}
        for r in others:
            if committed.get(r["doc_id"]) == r["gen"]:
                raise InputError(f"chunk id {r['chunk_id']!r} already belongs to another document")

    def _upsert(self, docs: Sequence[DocumentWrite]) -> list[str]:
        started = time.time()
        current = self.registry.rows([d.doc_id for d in docs])
        statuses: list[str] = []
        todo: list[DocumentWrite] = []
        for doc in docs:
            row = current.get(doc.doc_id)
            live = row is not None and row["state"] == R.LIVE
            stored = (row["content_hash"], row["vids"]) if row is not None else None
            same = stored == (doc.content_hash, _vids_digest(doc))
            if live and same:
                statuses.append("unchanged")
                continue
            statuses.append("updated" if live else "added")
            todo.append(doc)
        if not todo:
            return statuses
        self._check_owners(todo)
        records = [r for doc in todo for r in doc.chunks]
        vectors = self.cols.dense_vectors([r.vector_id for r in records])
        fresh = [r for r in records if r.vector_id not in vectors]
        late: dict[str, bytes] = {}
        if fresh:
            embs, late = S.embed_chunks(self.embedder, fresh, with_sentences=self.stores_sentences)
            if len(embs) != len(fresh) or any(len(e) != self._dim for e in embs):
                raise IndexError_(f"embedder returned {len(embs)} vectors of the wrong size for {len(fresh)}")
            vectors.update({r.vector_id: list(e) for r, e in zip(fresh, embs, strict=True)})
        sentences = (
            S.sentence_rows([(d.doc_id, d.chunks) for d in todo], late, self.cols.sentence_blobs)
            if self.stores_sentences
            else {}
        )
        gens = {doc.doc_id: R.new_gen() for doc in todo}
        tokens = {r.chunk_id: self.analyzer.tokens(r.embed_text) for r in records}
        try:
            for doc in todo:  # 1. rows of the new generations (no read admits them yet)
                gen = gens[doc.doc_id]
                self.cols.insert("chunks", chunk_rows(doc, gen, vectors, tokens))
                self.cols.insert("parents", parent_rows(doc, gen))
                self.cols.insert(
                    "sentences", sentence_rows_of(doc.doc_id, gen, sentences.get(doc.doc_id, []))
                )
            if time.time() - started > RECONCILE_GRACE_S / 2:
                raise IndexError_("write took longer than half the reconcile grace; nothing was committed")
            # 2. commit: one registry row per document, then a new version
            now = time.time()
            self.registry.write(
                [
                    R.doc_row(
                        doc.doc_id,
                        gens[doc.doc_id],
                        state=R.LIVE,
                        content_hash=doc.content_hash,
                        vids=_vids_digest(doc),
                        metadata=doc.metadata,
                        n_chunks=len(doc.chunks),
                        updated_at=now,
                    )
                    for doc in todo
                ]
            )
        except BaseException:
            self.cols.delete_gens(list(gens.values()))  # best effort; reconcile removes them otherwise
            raise
        extra = {} if self.stores_sentences else {"sentences_complete": False}
        self.registry.bump(**extra)
        # 3. the generations these writes replaced (never another writer's newer one)
        self.cols.delete_gens([current[d.doc_id]["gen"] for d in todo if d.doc_id in current])
        # Milvus Lite searches rows still in its write-ahead log by brute force (measured: 2-5 s per search
        # of 3000 unflushed chunks, 0.1 s once sealed), so each write batch is sealed there
        self.flush()
        return statuses

    def delete_document(self, doc_id: str, *, soft: bool) -> Deletion:
        """Soft: registry row to the trash, then rows marked deleted; hard: registry row, then rows."""
        with self._write_lock:
            row = self.registry.row(doc_id)
            if row is None or (soft and row["state"] != R.LIVE):
                return Deletion(live=False, trashed=False)
            if soft:
                self.registry.write([{**row, "state": R.TRASH, "deleted_at": time.time()}])
                self.registry.bump()
                self.cols.mark_deleted(doc_id, row["gen"], True)
                return Deletion(live=True, trashed=False)
            self.registry.remove([doc_id])
            if row["state"] == R.LIVE:
                self.registry.bump()
            self.registry.count_hard_deletes(1)
            self.cols.delete_gens([row["gen"]])
        self.compact()
        return Deletion(live=row["state"] == R.LIVE, trashed=row["state"] == R.TRASH)

    def deleted_documents(self) -> list[dict[str, Any]]:
        """Soft-deleted documents, oldest deletion first."""
        rows = self.registry.all_rows(R.TRASH)
        return [R.public_doc(r) for r in sorted(rows, key=lambda r: (r["deleted_at"], r["pk"]))]

    def restore_document(self, doc_id: str) -> bool:
        """Bring a soft-deleted document back without re-embedding; False when it is not in the trash."""
        with self._write_lock:
            row = self.registry.row(doc_id)
            if row is None or row["state"] != R.TRASH:
                return False
            self.cols.mark_deleted(doc_id, row["gen"], False)  # still hidden: the registry says trash
            self.registry.write([{**row, "state": R.LIVE, "deleted_at": 0.0, "updated_at": time.time()}])
            self.registry.bump()
            return True

    def purge_deleted(self, cutoff: float) -> list[str]:
        """Forget documents soft-deleted at or before `cutoff`; their ids."""
        with self._write_lock:
            rows = [r for r in self.registry.all_rows(R.TRASH) if float(r["deleted_at"]) <= cutoff]
            if not rows:
                return []
            self.registry.remove([r["pk"] for r in rows])
            self.registry.count_hard_deletes(len(rows))
            self.cols.delete_gens([r["gen"] for r in rows])
        self.compact()
        return [r["pk"] for r in rows]

    # ------------------------------------------------------------------ reads
    def _visible(self, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Hits of committed generations of live documents only (the read side of the write protocol)."""
        committed = self.registry.committed([h["doc_id"] for h in hits]) if hits else {}
        return [h for h in hits if committed.get(h["doc_id"]) == h["gen"]]

    def _search(
        self, data: Any, field: str, metric: str, n: int, scope: SearchScope
    ) -> list[tuple[str, float]]:
        with self._gate.shared():
            return self._search_gated(data, field, metric, n, scope)

    def _search_gated(
        self, data: Any, field: str, metric: str, n: int, scope: SearchScope
    ) -> list[tuple[str, float]]:
        expr = MF.scope_expr(scope.node, scope.access)
        limit = min(n, MAX_LIMIT)
        while True:
            res = self.client.search(
                self.names["chunks"],
                data=[data],
                anns_field=field,
                filter=expr,
                limit=limit,
                output_fields=_HIT_FIELDS,
                search_params={"metric_type": metric},
            )
            hits = [{**h["entity"], "score": float(h["distance"])} for h in res[0]]
            visible = self._visible(hits)
            # rows of writes in flight or of killed writes drop out: fetch more until n or exhausted
            if len(visible) >= n or len(hits) < limit or limit >= MAX_LIMIT:
                break
            limit = min(MAX_LIMIT, 2 * limit + (len(hits) - len(visible)))
        for h in visible:
            self._doc_types[h["chunk_id"]] = h["doc_type"] or None
        return [(h["chunk_id"], h["score"]) for h in visible[:n]]

    def dense_search(
        self, query_vector: Callable[[], Sequence[float]], n: int, scope: SearchScope
    ) -> list[tuple[str, float]]:
        """Nearest `n` chunks in `scope` by cosine similarity (filter + ACL applied server-side)."""
        return self._search(list(query_vector()), "dense", "COSINE", n, scope)

    def keyword_search(self, query: str, n: int, scope: SearchScope) -> list[tuple[str, float]]:
        """Best `n` BM25 matches in `scope` (Milvus's BM25 over our analyzer's terms)."""
        terms = " ".join(self.analyzer.tokens(query))
        if not terms:
            return []
        pairs = self._search(terms, "sparse", "BM25", n, scope)
        # Milvus documents BM25 scores as positive, higher = better; Milvus Lite returns them negated (still
        # best first). abs() is right for both, and is the one place the sign is normalised.
        return sorted(((cid, abs(s)) for cid, s in pairs), key=lambda p: -p[1])

    def doc_types(self, chunk_ids: Sequence[str]) -> dict[str, str | None]:
        """Each chunk's `doc_type` (from the search that just returned it, else from Milvus)."""
        missing = [c for c in chunk_ids if c not in self._doc_types]
        if missing:
            for cid, chunk in self.get_chunks(missing).items():
                dt = chunk.metadata.get("doc_type")
                self._doc_types[cid] = None if dt is None else str(dt)
        return {c: self._doc_types.get(c) for c in chunk_ids}

    def get_chunks(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """Stored chunks of committed generations by id; no access check."""
        fields = ["chunk_id", "doc_id", "gen", "text", "metadata", "parent_id"]
        with self._gate.shared():
            rows = self.cols.query_in("chunks", "chunk_id", chunk_ids, fields)
            visible = self._visible(rows)
        return {
            r["chunk_id"]: Chunk(
                chunk_id=r["chunk_id"],
                doc_id=r["doc_id"],
                text=r["text"],
                metadata=r["metadata"] or {},
                parent_id=r["parent_id"] or None,
            )
            for r in visible
        }

    def get_chunk(self, chunk_id: str, access: AccessScope | None) -> Chunk | None:
        """One stored chunk, or None (also when `access` may not see it)."""
        chunk = self.get_chunks([chunk_id]).get(chunk_id)
        return chunk if chunk is not None and F.acl_allows(chunk.metadata, access) else None

    def get_parent(self, parent_id: str, access: AccessScope | None) -> Parent | None:
        """One parent section, or None (also when `access` may see none of its chunks)."""
        with self._gate.shared():
            return self._get_parent(parent_id, access)

    def _get_parent(self, parent_id: str, access: AccessScope | None) -> Parent | None:
        pieces = self._visible(
            self.client.query(
                self.names["parents"],
                filter=f"parent_id == {MF.literal(parent_id)}",
                output_fields=["doc_id", "gen", "piece", "text", "section"],
            )
        )
        if not pieces:
            return None
        doc_id, gen = pieces[0]["doc_id"], pieces[0]["gen"]
        pieces = sorted((p for p in pieces if p["gen"] == gen), key=lambda p: p["piece"])
        if access is not None and not access.unrestricted:
            expr = f"parent_id == {MF.literal(parent_id)} and gen == {MF.literal(gen)}"
            metas = [r["metadata"] or {} for r in self.cols.rows("chunks", expr, ["metadata"])]
            if not any(F.acl_allows(m, access) for m in metas):
                return None
        return Parent(
            parent_id=parent_id,
            doc_id=doc_id,
            text="".join(p["text"] for p in pieces),
            section=pieces[0]["section"],
        )

    def _live_chunk_rows(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        committed = {r["pk"]: r["gen"] for r in self.registry.all_rows(R.LIVE)}
        return self.cols.rows("chunks", "deleted == false", ["chunk_id", "doc_id", "gen"]), committed

    def chunk_ids(self) -> set[str]:
        """Every chunk id of a committed live document."""
        rows, committed = self._live_chunk_rows()
        return {r["chunk_id"] for r in rows if committed.get(r["doc_id"]) == r["gen"]}

    def vector_chunk_ids(self) -> set[str]:
        """Chunk ids with a vector; rows of uncommitted generations as "<stray:pk>"."""
        trashed = {r["gen"] for r in self.registry.all_rows(R.TRASH)}
        rows, committed = self._live_chunk_rows()
        return {
            r["chunk_id"] if committed.get(r["doc_id"]) == r["gen"] else f"<stray:{r['chunk_id']}#{r['gen']}>"
            for r in rows
            if r["gen"] not in trashed
        }

    # ------------------------------------------------------------------ sentence vectors
    def sentence_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors (float32, unit length) for the keys held."""
        with self._gate.shared():
            return self.cols.sentence_vectors(keys)

    def backfill_sentences(self) -> int:
        """Sentence vectors for documents written without them; the number of documents (a meta flag
        makes it free once done)."""
        if not self.stores_sentences or self.registry.meta_get("sentences_complete") is not False:
            return 0
        with self._write_lock:
            n = U.backfill_sentences(self.cols, self.registry, self.embedder)
            self.registry.meta_set({"sentences_complete": True})
        return n

    # ------------------------------------------------------------------ housekeeping
    def stats(self) -> dict[str, Any]:
        """Counts from the registry and the collections."""
        return U.counts(self.cols, self.registry, self._dim)

    def flush(self) -> None:
        """Seal what a Lite file holds only in its write-ahead log (a server seals segments by itself)."""
        if self._lite_file:
            with self._gate.shared():
                for name in self.names.values():
                    self.client.flush(name)

    def compact(self) -> None:
        """Leave no deleted row in storage: a Lite file's collections are rewritten (milvus_rewrite.py: Lite
        does not compact); a server is asked to compact (asynchronous: deleted rows leave its storage when
        Milvus's compaction and garbage collection finish)."""
        if not self._lite_file:
            self.cols.compact(log)
            return
        with self._write_lock, self._gate.exclusive():
            for role in ("chunks", "parents", "sentences", "documents"):
                rewrite(self.client, self.names[role], partial(self._create, role))

    def _create(self, role: str, name: str) -> None:
        create_collection(self.client, role, name, self._dim)

    def close(self) -> None:
        """Close the client."""
        self.client.close()
