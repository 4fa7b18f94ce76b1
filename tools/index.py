"""HybridIndex: a SQLite docstore (source of truth) + Chroma vectors + a BM25 keyword index, kept consistent.

Layout of an index directory::

    docstore.sqlite   documents (content hash, metadata), chunks (text, metadata, tokens, vector id), parents,
                      meta (version, uid, last update, embedder, analyzer), trash_* (soft-deleted documents)
    chroma/           Chroma persistent data (mode "persistent"; in mode "http" vectors live on the server)
                      sentences (float16 sentence vectors for the offline reranker; tools/sentence_store.py)
    bm25.json         BM25 snapshot tagged with the index version (rebuilt from SQLite tokens when stale)
    lock              held with flock while a process has the index open

Consistency: every chunk's vector id is ``<chunk_id>#<hash of embedded text + metadata>``, so changed chunks
get new vector ids. An upsert (1) writes the new vectors to Chroma, (2) swaps the document's rows in one
SQLite transaction that also bumps `version`, (3) deletes the old vectors. A process killed at any point
leaves SQLite at the previous or the next state; on open, `reconcile()` deletes Chroma ids SQLite does not
know and re-embeds ids SQLite knows but Chroma lacks, so Chroma, SQLite and BM25 always agree on what
exists.

Soft delete (`delete_document(doc_id, soft=True)`) moves a document's rows into the trash_* tables and drops
its vectors and BM25 entries in the same way a hard delete does, so no search path can see it; within the
grace period `restore_document` re-indexes it, and `purge_deleted(older_than_days)` forgets it for good.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ragroute.tools import filters as F
from ragroute.tools import sentence_store as S
from ragroute.tools.analyzer import Analyzer
from ragroute.tools.bm25 import BM25Index
from ragroute.tools.cache import LRUCache
from ragroute.tools.embeddings import Embedder, embedder_name, get_embedder
from ragroute.tools.errors import ConfigError, IndexError_, InputError
from ragroute.tools.hybrid import DEFAULT_DOC_TYPE_WEIGHTS, rrf_fuse, validate_weights
from ragroute.tools.types import AccessScope, Chunk, Parent, SearchHit
from ragroute.tools.vectorstore import CHROMA_MODES, VectorStore

log = logging.getLogger(__name__)

RETRIEVERS = ("dense", "bm25")
MAX_K = 1000
_COLLECTION_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL, metadata TEXT NOT NULL,
    n_chunks INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, vector_id TEXT NOT NULL UNIQUE, ord INTEGER NOT NULL,
    text TEXT NOT NULL, metadata TEXT NOT NULL, tokens TEXT NOT NULL, parent_id TEXT);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_parent ON chunks(parent_id);
CREATE TABLE IF NOT EXISTS parents (
    parent_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, text TEXT NOT NULL, section TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS parents_doc ON parents(doc_id);
CREATE TABLE IF NOT EXISTS trash_documents (
    doc_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL, metadata TEXT NOT NULL,
    n_chunks INTEGER NOT NULL, updated_at REAL NOT NULL, deleted_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trash_chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, ord INTEGER NOT NULL, text TEXT NOT NULL,
    metadata TEXT NOT NULL, parent_id TEXT);
CREATE INDEX IF NOT EXISTS trash_chunks_doc ON trash_chunks(doc_id);
CREATE TABLE IF NOT EXISTS trash_parents (
    parent_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, text TEXT NOT NULL, section TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS trash_parents_doc ON trash_parents(doc_id);
CREATE TABLE IF NOT EXISTS sentences (
    doc_id TEXT NOT NULL, key TEXT NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (doc_id, key));
CREATE INDEX IF NOT EXISTS sentences_key ON sentences(key);
"""
DEFAULT_GRACE_DAYS = 30.0  # soft-deleted documents `purge_deleted()` keeps by default
_TRASH_TABLES = ("trash_documents", "trash_chunks", "trash_parents")


def _default_path() -> str:
    return os.environ.get("RAGROUTE_INDEX_DIR") or os.path.join(os.path.expanduser("~"), ".ragroute", "index")


@dataclass
class IndexConfig:
    """Where the index lives and how it retrieves; validated on construction."""

    path: str = field(default_factory=_default_path)
    chroma_mode: str = "persistent"
    chroma_host: str = "localhost"
    chroma_port: int = 8000
    collection: str = "ragroute"
    embedding: str = "minilm"
    rrf_k: int = 60
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "bm25": 1.0})
    doc_type_weights: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_DOC_TYPE_WEIGHTS.items()}
    )
    # candidates fetched from each retriever before fusion when search() gets no candidate_k
    candidate_k: int = 50
    lock_timeout_s: float = 10.0
    # store per-sentence vectors at ingest (offline reranker/generator skip re-embedding per query); costs
    # ingest time and ~0.8 KB per sentence; only used when `embedding` is the offline sentence model
    sentence_vectors: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.path, str | os.PathLike) or not str(self.path).strip():
            raise ConfigError(f"index path must be a non-empty path, got {self.path!r}")
        self.path = os.path.abspath(os.path.expanduser(str(self.path)))
        if self.chroma_mode not in CHROMA_MODES:
            raise ConfigError(f"unknown chroma_mode {self.chroma_mode!r}; options: {', '.join(CHROMA_MODES)}")
        if not isinstance(self.chroma_port, int) or not 0 < self.chroma_port < 65536:
            raise ConfigError(f"chroma_port must be an integer in 1..65535, got {self.chroma_port!r}")
        if not isinstance(self.collection, str) or not _COLLECTION_RE.match(self.collection):
            raise ConfigError(
                f"collection {self.collection!r} must be 3-512 characters of [a-zA-Z0-9._-], "
                "starting and ending with a letter or digit"
            )
        if not isinstance(self.rrf_k, int) or isinstance(self.rrf_k, bool) or self.rrf_k < 0:
            raise ConfigError(f"rrf_k must be an integer >= 0, got {self.rrf_k!r}")
        if not isinstance(self.candidate_k, int) or self.candidate_k < 1:
            raise ConfigError(f"candidate_k must be an integer >= 1, got {self.candidate_k!r}")
        if not isinstance(self.sentence_vectors, bool):
            raise ConfigError(f"sentence_vectors must be true or false, got {self.sentence_vectors!r}")
        self.weights = _check_weights(self.weights, "weights")
        if not isinstance(self.doc_type_weights, dict):
            raise ConfigError("doc_type_weights must map doc_type -> {'dense': w, 'bm25': w}")
        self.doc_type_weights = {
            str(t): _check_weights(w, f"doc_type_weights[{t!r}]") for t, w in self.doc_type_weights.items()
        }


def _check_weights(weights: Any, what: str) -> dict[str, float]:
    if not isinstance(weights, dict):
        raise ConfigError(f"{what} must be a dict like {{'dense': 1.0, 'bm25': 1.0}}, got {weights!r}")
    unknown = set(weights) - set(RETRIEVERS)
    if unknown:
        raise ConfigError(f"{what}: unknown retriever(s) {sorted(unknown)}; options: {', '.join(RETRIEVERS)}")
    return validate_weights(weights, what=what)


# --------------------------------------------------------------------------- process lock

_LOCKS: dict[str, tuple[int, int]] = {}  # path -> (fd, refcount), shared by instances in one process
_LOCKS_GUARD = threading.Lock()


def _acquire_lock(path: str, timeout: float) -> None:
    with _LOCKS_GUARD:
        if path in _LOCKS:
            fd, n = _LOCKS[path]
            _LOCKS[path] = (fd, n + 1)
            return
        fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise IndexError_(
                        f"index {path} is locked by another process (pid {holder}); close it, or share "
                        "vectors through chroma_mode='http'"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _LOCKS[path] = (fd, 1)


def _release_lock(path: str) -> None:
    with _LOCKS_GUARD:
        if path not in _LOCKS:
            return
        fd, n = _LOCKS[path]
        if n > 1:
            _LOCKS[path] = (fd, n - 1)
            return
        del _LOCKS[path]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------- helpers


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


def _embed_text(text: str, meta: dict[str, Any]) -> str:
    """What gets embedded and keyword-indexed: a title/section header in front of the chunk text."""
    head = " > ".join(str(x) for x in (meta.get("title"), meta.get("section")) if x)
    return f"{head}\n{text}" if head and not text.startswith(head) else text


@dataclass
class _Row:
    chunk_id: str
    vector_id: str
    ord: int
    text: str
    meta: dict[str, Any]
    tokens: list[str]
    parent_id: str | None
    embed_text: str


class HybridIndex:
    """Dense (Chroma) + keyword (BM25) retrieval over one SQLite docstore; metadata/ACL filters on both."""

    def __init__(self, config: IndexConfig | None = None, *, embedder: Embedder | None = None) -> None:
        self.config = config or IndexConfig()
        self.path = self.config.path
        os.makedirs(self.path, exist_ok=True)
        _acquire_lock(self.path, self.config.lock_timeout_s)
        self._closed = False
        try:
            self._open(embedder)
        except BaseException:
            self._closed = True
            _release_lock(self.path)
            raise

    def _open(self, embedder: Embedder | None) -> None:
        # _lock guards SQLite and the in-memory maps (held briefly); _write_lock serializes writers, so
        # searches keep running while a batch is being embedded
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self.embedder: Embedder = embedder if embedder is not None else get_embedder(self.config.embedding)
        self.analyzer = Analyzer()
        self._db = sqlite3.connect(
            os.path.join(self.path, "docstore.sqlite"), check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.store = VectorStore(
            mode=self.config.chroma_mode,
            path=os.path.join(self.path, "chroma"),
            host=self.config.chroma_host,
            port=self.config.chroma_port,
            collection=self.config.collection,
        )
        self.bm25 = BM25Index()
        self._allowed_cache: OrderedDict[tuple[str, str, int], tuple[np.ndarray, set[str]]] = OrderedDict()
        # repeated queries (classify's probe, retries, popular questions) skip the embedding model
        self._query_vectors: LRUCache[list[float]] = LRUCache(2048, name="query_embeddings")
        self._check_embedder()
        # sentence vectors come out of the chunk's own forward pass (see tools/sentence_store.py), so only
        # the offline sentence model, and only an embedder that exposes that pass, stores them
        self._stores_sentences = (
            self.config.sentence_vectors
            and embedder_name(self.embedder) == S.SENTENCE_MODEL
            and callable(getattr(self.embedder, "embed_with_spans", None))
        )
        self._load_memory()
        self.reconcile()
        if self._stores_sentences:  # older documents get theirs from backfill_sentences() (ingest calls it)
            S.register(self)

    @classmethod
    def open(
        cls, path: str | None = None, *, embedder: Embedder | None = None, **config_kw: Any
    ) -> HybridIndex:
        """Open (creating if needed) the index at `path` (default RAGROUTE_INDEX_DIR or ~/.ragroute/index)."""
        if path is not None:
            config_kw["path"] = path
        try:
            config = IndexConfig(**config_kw)
        except TypeError as exc:
            raise ConfigError(f"bad index option: {exc}") from exc
        return cls(config, embedder=embedder)

    # ------------------------------------------------------------------ meta
    def _meta_get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _meta_set(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, str(value)))

    @property
    def version(self) -> int:
        """Bumps on every change to the index contents (persisted; use it as a cache key)."""
        # under the lock: a writer bumps the version inside its transaction and updates the in-memory
        # maps before releasing it, so a reader never pairs the new version with the old contents
        with self._lock:
            return int(self._meta_get("version") or 0)

    @property
    def uid(self) -> str:
        """A random id made when the index was created: a rebuilt index at the same path gets another."""
        return self._uid

    def _bump(self) -> None:
        """Inside a write transaction: a new version and the time of this change."""
        self._meta_set("version", self.version + 1)
        self._meta_set("updated_at", time.time())

    def _check_embedder(self) -> None:
        name = embedder_name(self.embedder)
        dim = len(self.embedder.embed_query("dimension probe"))
        stored_dim = self._meta_get("embedding_dim")
        stored_name = self._meta_get("embedding")
        has_chunks = self._db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is not None
        if has_chunks and stored_dim is not None and int(stored_dim) != dim:
            raise ConfigError(
                f"index {self.path} was built with embedding {stored_name!r} ({stored_dim} dims) but "
                f"{name!r} gives {dim} dims; open it with embedding={stored_name!r} or rebuild it"
            )
        if has_chunks and stored_name and stored_name != name:
            log.warning("index %s was built with embedding %r, now using %r", self.path, stored_name, name)
        self._dim = dim
        self._db.execute("BEGIN IMMEDIATE")
        self._meta_set("embedding", name)
        self._meta_set("embedding_dim", dim)
        if self._meta_get("version") is None:
            self._meta_set("version", 0)
        if self._meta_get("uid") is None:
            import uuid

            self._meta_set("uid", uuid.uuid4().hex)
        self._uid = str(self._meta_get("uid"))
        self._db.execute("COMMIT")

    def _load_memory(self) -> None:
        """Load per-chunk metadata and the vector-id map; retokenize if the analyzer changed."""
        self._meta: dict[str, dict[str, Any]] = {}
        self._vid_to_cid: dict[str, str] = {}
        self._cid_to_vid: dict[str, str] = {}
        for cid, vid, meta in self._db.execute("SELECT chunk_id, vector_id, metadata FROM chunks"):
            self._meta[cid] = json.loads(meta)
            self._vid_to_cid[vid] = cid
            self._cid_to_vid[cid] = vid
        sig = self.analyzer.signature
        if self._meta_get("analyzer") != sig:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute("SELECT chunk_id, text, metadata FROM chunks").fetchall()
            for cid, text, meta in rows:
                toks = self.analyzer.tokens(_embed_text(text, json.loads(meta)))
                self._db.execute("UPDATE chunks SET tokens=? WHERE chunk_id=?", (json.dumps(toks), cid))
            self._meta_set("analyzer", sig)
            self._db.execute("COMMIT")
        self._loaded_version = self.version
        snap = os.path.join(self.path, "bm25.json")
        if not self.bm25.load(snap, version=self._loaded_version, signature=sig):
            self.bm25.clear()
            self.bm25.add_many(
                (cid, json.loads(toks))
                for cid, toks in self._db.execute("SELECT chunk_id, tokens FROM chunks")
            )
            self.bm25.save(snap, version=self._loaded_version, signature=sig)
        self._bm25_saved = self._loaded_version
        self._allowed_cache.clear()

    def _sync(self) -> None:
        """Reload in-memory state if another instance in this process changed the index."""
        if self.version != self._loaded_version:
            with self._lock:
                if self.version != self._loaded_version:
                    self._load_memory()

    def reconcile(self) -> dict[str, int]:
        """Make Chroma hold exactly SQLite's vectors: drop unknown ids, re-embed missing ones."""
        with self._write_lock, self._lock:
            known = set(self._vid_to_cid)
            present = self.store.ids()
            extra = present - known
            missing = sorted(known - present)
            if extra:
                self.store.delete(sorted(extra))
            if missing:
                rows = []
                for start in range(0, len(missing), 500):
                    part = missing[start : start + 500]
                    q = ",".join("?" * len(part))
                    rows += self._db.execute(
                        f"SELECT chunk_id, vector_id, text, metadata FROM chunks WHERE vector_id IN ({q})",
                        part,
                    ).fetchall()
                metas = [json.loads(m) for _, _, _, m in rows]
                embs = self.embedder.embed_documents(
                    [_embed_text(t, m) for (_, _, t, _), m in zip(rows, metas, strict=True)]
                )
                self.store.upsert(
                    [vid for _, vid, _, _ in rows],
                    embs,
                    [{**F.chroma_metadata(m), "chunk_id": r[0]} for r, m in zip(rows, metas, strict=True)],
                )
            if extra or missing:
                log.info(
                    "reconciled %s: removed %d stray vectors, re-embedded %d",
                    self.path,
                    len(extra),
                    len(missing),
                )
            return {"removed": len(extra), "reembedded": len(missing)}

    # ------------------------------------------------------------------ writes
    def document_hash(self, doc_id: str) -> str | None:
        """Content hash stored at the document's last ingest, or None if unknown."""
        row = self._db.execute("SELECT content_hash FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def _prepare(self, doc_id: str, chunks: list[Chunk], doc_metadata: dict[str, Any]) -> list[_Row]:
        if not isinstance(doc_id, str) or not doc_id:
            raise InputError(f"doc_id must be a non-empty string, got {doc_id!r}")
        rows: list[_Row] = []
        seen: set[str] = set()
        for i, ch in enumerate(chunks):
            if not isinstance(ch, Chunk):
                raise InputError(f"document {doc_id!r}: chunk {i} is {type(ch).__name__}, expected Chunk")
            if not ch.chunk_id or ch.chunk_id in seen:
                raise InputError(f"document {doc_id!r}: chunk id {ch.chunk_id!r} is empty or repeated")
            if "#" in ch.chunk_id:
                raise InputError(f"document {doc_id!r}: chunk id {ch.chunk_id!r} must not contain '#'")
            if ch.doc_id and ch.doc_id != doc_id:
                raise InputError(f"chunk {ch.chunk_id!r} belongs to {ch.doc_id!r}, not {doc_id!r}")
            seen.add(ch.chunk_id)
            meta = {**(doc_metadata or {}), **(ch.metadata or {}), "doc_id": doc_id}
            meta.setdefault("chunk_index", i)
            if ch.parent_id is not None:
                meta["parent_id"] = ch.parent_id
            try:
                meta = json.loads(_dumps(meta))
            except (TypeError, ValueError) as exc:
                raise InputError(f"chunk {ch.chunk_id!r}: metadata is not JSON-serializable: {exc}") from exc
            bad = [k for k in meta if not k or k[0] in "$#" or k.startswith("chroma:")]
            if bad:
                raise InputError(
                    f"chunk {ch.chunk_id!r}: metadata key(s) {bad} are not allowed (empty, or starting "
                    "with '$', '#' or 'chroma:')"
                )
            etext = _embed_text(ch.text, meta)
            digest = hashlib.sha1(f"{etext}\x00{_dumps(meta)}".encode()).hexdigest()[:16]
            rows.append(
                _Row(
                    ch.chunk_id,
                    f"{ch.chunk_id}#{digest}",
                    i,
                    ch.text,
                    meta,
                    self.analyzer.tokens(etext),
                    ch.parent_id,
                    etext,
                )
            )
        return rows

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

        Each document is atomic; the whole batch commits in one SQLite transaction.
        """
        self._check_open()
        self._sync()
        prepared: list[tuple[str, list[_Row], list[Parent], str, dict[str, Any]]] = []
        seen_docs: set[str] = set()
        for item in batch:
            if len(item) == 4:
                doc_id, chunks, parents, content_hash = item
                doc_metadata: dict[str, Any] = {}
            elif len(item) == 5:
                doc_id, chunks, parents, content_hash, doc_metadata = item
            else:
                raise InputError(
                    "upsert_documents items are (doc_id, chunks, parents, content_hash[, metadata])"
                )
            if doc_id in seen_docs:
                raise InputError(f"document {doc_id!r} appears twice in one batch")
            seen_docs.add(doc_id)
            if not isinstance(content_hash, str) or not content_hash:
                raise InputError(f"document {doc_id!r}: content_hash must be a non-empty string")
            for p in parents or []:
                if not isinstance(p, Parent):
                    raise InputError(f"document {doc_id!r}: parents must be Parent objects")
            prepared.append(
                (
                    doc_id,
                    self._prepare(doc_id, chunks, doc_metadata or {}),
                    list(parents or []),
                    content_hash,
                    doc_metadata or {},
                )
            )
        seen_chunks: set[str] = set()
        for _doc, rows, *_ in prepared:
            for r in rows:
                if r.chunk_id in seen_chunks:
                    raise InputError(f"chunk id {r.chunk_id!r} appears in two documents of one batch")
                seen_chunks.add(r.chunk_id)
        with self._write_lock:
            return self._upsert_locked(prepared)

    def _upsert_locked(
        self, prepared: list[tuple[str, list[_Row], list[Parent], str, dict[str, Any]]]
    ) -> list[str]:
        with self._lock:
            statuses: list[str] = []
            todo = []
            for doc_id, rows, parents, chash, dmeta in prepared:
                old = self._db.execute(
                    "SELECT chunk_id, vector_id FROM chunks WHERE doc_id=?", (doc_id,)
                ).fetchall()
                existed = self.document_hash(doc_id) is not None
                old_vids = {v for _, v in old}
                new_vids = {r.vector_id for r in rows}
                other_owner = (
                    self._db.execute(
                        "SELECT chunk_id FROM chunks WHERE doc_id != ? AND chunk_id IN "
                        f"({','.join('?' * len(rows))})",
                        (doc_id, *[r.chunk_id for r in rows]),
                    ).fetchone()
                    if rows
                    else None
                )
                if other_owner:
                    raise InputError(f"chunk id {other_owner[0]!r} already belongs to another document")
                if existed and self.document_hash(doc_id) == chash and old_vids == new_vids:
                    statuses.append("unchanged")
                    continue
                statuses.append("updated" if existed else "added")
                todo.append((doc_id, rows, parents, chash, dmeta, old, old_vids))
            if not todo:
                return statuses
            known_vids = set(self._vid_to_cid)
        # 1. new vectors first: SQLite learns their ids in step 2, reconcile undoes a crash before that
        fresh = [r for _, rows, *_ in todo for r in rows if r.vector_id not in known_vids]
        late: dict[str, bytes] = {}
        if fresh:
            embs, late = self._embed_chunks(fresh)
            if len(embs) != len(fresh) or any(len(e) != self._dim for e in embs):
                raise IndexError_(f"embedder returned {len(embs)} vectors of the wrong size for {len(fresh)}")
            self.store.upsert(
                [r.vector_id for r in fresh],
                embs,
                [{**F.chroma_metadata(r.meta), "chunk_id": r.chunk_id} for r in fresh],
            )
        sentences = self._sentence_rows([(doc_id, rows) for doc_id, rows, *_ in todo], late)
        # 2. one transaction swaps every document's rows and bumps the version
        with self._lock:
            now = time.time()
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for doc_id, rows, parents, chash, dmeta, _old, _ in todo:
                    db.execute("DELETE FROM sentences WHERE doc_id=?", (doc_id,))
                    db.executemany(
                        "INSERT INTO sentences(doc_id, key, vec) VALUES (?,?,?)", sentences.get(doc_id, [])
                    )
                    db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
                    db.execute("DELETE FROM parents WHERE doc_id=?", (doc_id,))
                    db.executemany(
                        "INSERT INTO chunks(chunk_id, doc_id, vector_id, ord, text, metadata, tokens, "
                        "parent_id) VALUES (?,?,?,?,?,?,?,?)",
                        [
                            (
                                r.chunk_id,
                                doc_id,
                                r.vector_id,
                                r.ord,
                                r.text,
                                _dumps(r.meta),
                                json.dumps(r.tokens),
                                r.parent_id,
                            )
                            for r in rows
                        ],
                    )
                    db.executemany(
                        "INSERT OR REPLACE INTO parents(parent_id, doc_id, text, section) VALUES (?,?,?,?)",
                        [(p.parent_id, doc_id, p.text, p.section or "") for p in parents],
                    )
                    db.execute(
                        "INSERT OR REPLACE INTO documents(doc_id, content_hash, metadata, n_chunks, "
                        "updated_at) VALUES (?,?,?,?,?)",
                        (doc_id, chash, _dumps(dmeta), len(rows), now),
                    )
                    for table in _TRASH_TABLES:  # re-ingesting a soft-deleted document revives it
                        db.execute(f"DELETE FROM {table} WHERE doc_id=?", (doc_id,))
                if not self._stores_sentences:  # a later open with sentence vectors on fills them in
                    self._meta_set("sentences_complete", 0)
                self._bump()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                if fresh:  # best effort; reconcile() on the next open removes them otherwise
                    self.store.delete([r.vector_id for r in fresh])
                raise
            # 3. in-memory views, then drop the vectors nobody references any more
            stale: list[str] = []
            for _doc, rows, _p, _h, _m, old, old_vids in todo:
                new_vids = {r.vector_id for r in rows}
                for cid, vid in old:
                    self._meta.pop(cid, None)
                    self._vid_to_cid.pop(vid, None)
                    self._cid_to_vid.pop(cid, None)
                self.bm25.remove_many(cid for cid, _ in old)
                for r in rows:
                    self._meta[r.chunk_id] = r.meta
                    self._vid_to_cid[r.vector_id] = r.chunk_id
                    self._cid_to_vid[r.chunk_id] = r.vector_id
                self.bm25.add_many((r.chunk_id, r.tokens) for r in rows)
                stale += sorted(old_vids - new_vids)
            self._after_change()
        if stale:
            self.store.delete(stale)
        return statuses

    def delete_document(self, doc_id: str, *, soft: bool = False) -> bool:
        """Remove a document from every search path; False if it was neither indexed nor soft-deleted.

        soft=True keeps its rows in the trash (restore_document / purge_deleted); a hard delete also
        forgets a soft-deleted copy and the document's stored PII mapping.
        """
        self._check_open()
        self._sync()
        with self._write_lock, self._lock:
            old = self._db.execute(
                "SELECT chunk_id, vector_id FROM chunks WHERE doc_id=?", (doc_id,)
            ).fetchall()
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                trashed = 0
                live = db.execute("SELECT 1 FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
                if soft and live:  # an older soft-deleted copy gives way to this one
                    for table in _TRASH_TABLES:
                        db.execute(f"DELETE FROM {table} WHERE doc_id=?", (doc_id,))
                    db.execute(
                        "INSERT INTO trash_documents(doc_id, content_hash, metadata, n_chunks, updated_at, "
                        "deleted_at) SELECT doc_id, content_hash, metadata, n_chunks, updated_at, ? "
                        "FROM documents WHERE doc_id=?",
                        (time.time(), doc_id),
                    )
                    db.execute(
                        "INSERT INTO trash_chunks(chunk_id, doc_id, ord, text, metadata, parent_id) "
                        "SELECT chunk_id, doc_id, ord, text, metadata, parent_id FROM chunks WHERE doc_id=?",
                        (doc_id,),
                    )
                    db.execute(
                        "INSERT INTO trash_parents(parent_id, doc_id, text, section) "
                        "SELECT parent_id, doc_id, text, section FROM parents WHERE doc_id=?",
                        (doc_id,),
                    )
                elif not soft:
                    trashed = db.execute("DELETE FROM trash_documents WHERE doc_id=?", (doc_id,)).rowcount
                    db.execute("DELETE FROM trash_chunks WHERE doc_id=?", (doc_id,))
                    db.execute("DELETE FROM trash_parents WHERE doc_id=?", (doc_id,))
                n = db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,)).rowcount
                db.execute("DELETE FROM sentences WHERE doc_id=?", (doc_id,))
                db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
                db.execute("DELETE FROM parents WHERE doc_id=?", (doc_id,))
                if n:
                    self._bump()
                if not soft and (n or trashed):
                    self._meta_set("hard_deleted", int(self._meta_get("hard_deleted") or 0) + 1)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if not soft and (n or trashed):
                self._forget_pii(doc_id)
            if not n:
                return bool(trashed)
            for cid, vid in old:
                self._meta.pop(cid, None)
                self._vid_to_cid.pop(vid, None)
                self._cid_to_vid.pop(cid, None)
            self.bm25.remove_many(cid for cid, _ in old)
            self.store.delete([vid for _, vid in old])
            self._after_change()
            return True

    def deleted_documents(self) -> list[dict[str, Any]]:
        """Soft-deleted documents: doc_id, n_chunks, metadata, updated_at, deleted_at (oldest first)."""
        self._check_open()
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, n_chunks, metadata, updated_at, deleted_at FROM trash_documents "
                "ORDER BY deleted_at, doc_id"
            ).fetchall()
        return [
            {"doc_id": d, "n_chunks": n, "metadata": json.loads(m), "updated_at": u, "deleted_at": t}
            for d, n, m, u, t in rows
        ]

    def restore_document(self, doc_id: str) -> bool:
        """Bring a soft-deleted document back (re-embedding its chunks); False if it is not in the trash."""
        self._check_open()
        with self._write_lock:
            with self._lock:
                doc = self._db.execute(
                    "SELECT content_hash, metadata FROM trash_documents WHERE doc_id=?", (doc_id,)
                ).fetchone()
                if doc is None:
                    return False
                chunks = [
                    Chunk(chunk_id=c, doc_id=doc_id, text=t, metadata=json.loads(m), parent_id=p)
                    for c, t, m, p in self._db.execute(
                        "SELECT chunk_id, text, metadata, parent_id FROM trash_chunks WHERE doc_id=? "
                        "ORDER BY ord",
                        (doc_id,),
                    )
                ]
                parents = [
                    Parent(parent_id=p, doc_id=doc_id, text=t, section=s)
                    for p, t, s in self._db.execute(
                        "SELECT parent_id, text, section FROM trash_parents WHERE doc_id=?", (doc_id,)
                    )
                ]
            if self.document_hash(doc_id) is not None:  # re-ingested meanwhile: the live copy wins
                return False
            # the upsert clears the trash rows in its own transaction
            self.upsert_documents([(doc_id, chunks, parents, doc[0], json.loads(doc[1]))])
            return True

    def purge_deleted(self, older_than_days: float = DEFAULT_GRACE_DAYS) -> list[str]:
        """Forget soft-deleted documents deleted more than `older_than_days` ago (0: all); their ids."""
        if (
            isinstance(older_than_days, bool)
            or not isinstance(older_than_days, int | float)
            or not (older_than_days >= 0)
        ):
            raise InputError(f"older_than_days must be a number >= 0, got {older_than_days!r}")
        self._check_open()
        cutoff = time.time() - float(older_than_days) * 86400.0
        with self._write_lock, self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                ids = [
                    d
                    for (d,) in db.execute(
                        "SELECT doc_id FROM trash_documents WHERE deleted_at <= ? ORDER BY doc_id", (cutoff,)
                    )
                ]
                for doc_id in ids:
                    for table in _TRASH_TABLES:
                        db.execute(f"DELETE FROM {table} WHERE doc_id=?", (doc_id,))
                if ids:
                    self._meta_set("hard_deleted", int(self._meta_get("hard_deleted") or 0) + len(ids))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        for doc_id in ids:
            self._forget_pii(doc_id)
        return ids

    def _forget_pii(self, doc_id: str) -> None:
        """Remove the document's encrypted PII mapping (ragroute.tools.ingest stores it in <index>/pii/)."""
        from ragroute.tools.pii import mapping_id_for

        try:
            os.remove(os.path.join(self.path, "pii", f"{mapping_id_for(doc_id)}.pii"))
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------------ sentence vectors
    def _embed_chunks(self, rows: list[_Row]) -> tuple[list[list[float]], dict[str, bytes]]:
        """Chunk vectors, and sentence key -> stored blob for the sentences read in the same pass."""
        if not self._stores_sentences:
            return self.embedder.embed_documents([r.embed_text for r in rows]), {}
        pairs = [S.sentence_pairs(r.text, r.meta) for r in rows]
        spans = [
            S.sentence_spans(r.embed_text, r.text, [s for s, _ in p])
            for r, p in zip(rows, pairs, strict=True)
        ]
        embed_with_spans = self.embedder.embed_with_spans  # type: ignore[attr-defined]
        embs, pooled = embed_with_spans([r.embed_text for r in rows], spans)
        late: dict[str, bytes] = {}
        for p, vecs in zip(pairs, pooled, strict=True):
            for (_, embedded), vec in zip(p, vecs, strict=True):
                key = S.sentence_key(S.SENTENCE_MODEL, embedded)
                if vec is not None and key not in late:
                    late[key] = S.encode(vec[None, :])[0]
        return embs, late

    def _sentence_rows(
        self, docs: list[tuple[str, list[_Row]]], late: dict[str, bytes] | None = None
    ) -> dict[str, list[tuple[str, str, bytes]]]:
        """(doc_id, key, blob) rows of each document's sentence vectors: from `late` (this ingest's
        forward pass), else already stored (an unchanged chunk); a sentence the model never read (past
        its window) is left to query time."""
        if not self._stores_sentences or not docs:
            return {}
        key = S.sentence_key
        keyed = {  # each document's distinct sentence keys
            doc_id: list(
                dict.fromkeys(
                    key(S.SENTENCE_MODEL, t) for r in rows for t in S.chunk_sentences(r.text, r.meta)
                )
            )
            for doc_id, rows in docs
        }
        known = dict(late or {})
        known.update(self._stored_blobs([k for keys in keyed.values() for k in keys if k not in known]))
        return {doc_id: [(doc_id, k, known[k]) for k in keys if k in known] for doc_id, keys in keyed.items()}

    def _stored_blobs(self, keys: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                q = ",".join("?" * len(part))
                out.update(self._db.execute(f"SELECT key, vec FROM sentences WHERE key IN ({q})", part))
        return out

    def sentence_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors (float32, unit length) for the keys this index holds."""
        if self._closed:
            return {}
        return {k: S.decode(blob) for k, blob in self._stored_blobs(keys).items()}

    def backfill_sentences(self) -> int:
        """Sentence vectors for documents ingested before they were stored (or with them off); the number
        of documents filled. Cheap once done (a flag); ragroute.tools.ingest calls it after every ingest, so an
        index from an older version gets them on its next `ragroute ingest`, not on open: reading every
        chunk again takes as long as embedding it did."""
        self._check_open()
        if not self._stores_sentences or self._meta_get("sentences_complete") == "1":
            return 0
        with self._write_lock:
            with self._lock:
                docs = [
                    d
                    for (d,) in self._db.execute(
                        "SELECT doc_id FROM documents "
                        "WHERE doc_id NOT IN (SELECT DISTINCT doc_id FROM sentences)"
                    )
                ]
            if docs:
                log.info("computing sentence vectors for %d documents of %s (once)", len(docs), self.path)
            for start in range(0, len(docs), 200):
                part = docs[start : start + 200]
                with self._lock:
                    q = ",".join("?" * len(part))
                    found: dict[str, list[_Row]] = {d: [] for d in part}
                    for doc_id, text, meta in self._db.execute(
                        f"SELECT doc_id, text, metadata FROM chunks WHERE doc_id IN ({q})", part
                    ):
                        m = json.loads(meta)
                        found[doc_id].append(_Row("", "", 0, text, m, [], None, _embed_text(text, m)))
                _, late = self._embed_chunks([r for rows in found.values() for r in rows])
                rows = self._sentence_rows(list(found.items()), late)
                with self._lock:
                    self._db.execute("BEGIN IMMEDIATE")
                    for doc_rows in rows.values():
                        self._db.executemany(
                            "INSERT OR IGNORE INTO sentences(doc_id, key, vec) VALUES (?,?,?)", doc_rows
                        )
                    self._db.execute("COMMIT")
            with self._lock:
                self._meta_set("sentences_complete", 1)
        return len(docs)

    def _after_change(self) -> None:
        self._loaded_version = self.version
        self._allowed_cache.clear()

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

    # ------------------------------------------------------------------ reads
    def _check_open(self) -> None:
        if self._closed:
            raise IndexError_(f"index {self.path} is closed")

    def _validate(self, query: str, k: int, candidate_k: int | None) -> int:
        if not isinstance(query, str) or not query.strip():
            raise InputError("query must be a non-empty string")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the embedder's tokenizer would raise TypeError
            raise InputError("query is not valid unicode (it contains a lone surrogate)") from None
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise InputError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        cand = self.config.candidate_k if candidate_k is None else candidate_k
        if not isinstance(cand, int) or isinstance(cand, bool) or cand < 1:
            raise InputError(f"candidate_k must be a positive integer, got {candidate_k!r}")
        return max(cand, k)

    def _allowed(
        self, node: F.Node | None, filters: dict[str, Any] | None, access: AccessScope | None
    ) -> tuple[np.ndarray, set[str]] | None:
        """Chunks passing filter + ACL as (BM25 mask, id set); None = everything. Cached per version."""
        if node is None and (access is None or access.unrestricted):
            return None
        key = (
            F.describe(filters),
            _dumps([access.groups, access.clearance]) if access else "",
            self._loaded_version,
        )
        hit = self._allowed_cache.get(key)
        if hit is not None:
            self._allowed_cache.move_to_end(key)
            return hit
        with self._lock:  # upserts swap _meta entries under the same lock
            allowed = {cid for cid, meta in self._meta.items() if F.matches(node, meta, access)}
            mask = self.bm25.mask_for(allowed)
        self._allowed_cache[key] = (mask, allowed)
        while len(self._allowed_cache) > 64:
            self._allowed_cache.popitem(last=False)
        return mask, allowed

    def _dense(
        self, query: str, n: int, node: F.Node | None, access: AccessScope | None
    ) -> list[tuple[str, float]]:
        if not self._vid_to_cid:
            return []
        where = F.compile_where(node, access)
        qv = self._query_vectors.get_or_compute(query, lambda: list(self.embedder.embed_query(query)))
        res = self.store.query(qv, n, where=where)
        out = []
        for vid, score in res:
            cid = self._vid_to_cid.get(vid)
            # defence in depth: a chunk is returned only if SQLite knows it and Python agrees it passes
            if cid is not None and F.matches(node, self._meta[cid], access):
                out.append((cid, score))
        return out

    def _keyword(
        self,
        query: str,
        n: int,
        node: F.Node | None,
        filters: dict[str, Any] | None,
        access: AccessScope | None,
    ) -> list[tuple[str, float]]:
        allowed = self._allowed(node, filters, access)
        tokens = self.analyzer.tokens(query)
        if allowed is None:
            return self.bm25.search(tokens, n)
        try:
            return self.bm25.search(tokens, n, allowed=allowed[0])
        except ValueError:  # a concurrent upsert resized the BM25 index after the mask was built
            return self.bm25.search(tokens, n, allowed=allowed[1])

    def _hits(
        self, ranked: list[tuple[str, float, dict[str, int | None], dict[str, float]]]
    ) -> list[SearchHit]:
        if not ranked:
            return []
        ids = [r[0] for r in ranked]
        with self._lock:
            rows = {
                cid: (doc_id, text, parent_id)
                for cid, doc_id, text, parent_id in self._db.execute(
                    "SELECT chunk_id, doc_id, text, parent_id FROM chunks WHERE chunk_id IN "
                    f"({','.join('?' * len(ids))})",
                    ids,
                )
            }
        hits = []
        for cid, score, ranks, scores in ranked:
            if cid not in rows:  # deleted between retrieval and lookup
                continue
            doc_id, text, parent_id = rows[cid]
            hits.append(
                SearchHit(
                    chunk_id=cid,
                    doc_id=doc_id,
                    text=text,
                    score=score,
                    metadata=dict(self._meta.get(cid, {})),
                    ranks=ranks,
                    source_scores=scores,
                    parent_id=parent_id,
                )
            )
        return hits

    def _single(self, name: str, pairs: list[tuple[str, float]], k: int) -> list[SearchHit]:
        other = "bm25" if name == "dense" else "dense"
        return self._hits(
            [(cid, s, {name: i, other: None}, {name: s}) for i, (cid, s) in enumerate(pairs[:k], 1)]
        )

    def _begin(
        self, query: str, k: int, filters: dict[str, Any] | None, candidate_k: int | None
    ) -> tuple[int, F.Node | None]:
        self._check_open()
        n = self._validate(query, k, candidate_k)
        node = F.parse_filter(filters)
        self._sync()
        return n, node

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
        n, node = self._begin(query, k, filters, candidate_k)
        return self._single("dense", self._dense(query, k, node, access), k)

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
        n, node = self._begin(query, k, filters, candidate_k)
        return self._single("bm25", self._keyword(query, k, node, filters, access), k)

    def _fuse(
        self,
        dense: list[tuple[str, float]],
        kw: list[tuple[str, float]],
        k: int,
        weights: dict[str, float] | None,
    ) -> list[SearchHit]:
        w = (
            self.config.weights
            if weights is None
            else {**self.config.weights, **_check_weights(weights, "weights")}
        )
        fused = rrf_fuse(
            {"dense": dense, "bm25": kw},
            rrf_k=self.config.rrf_k,
            weights=w,
            doc_type_weights=self.config.doc_type_weights,
            doc_type_of=lambda cid: (self._meta.get(cid) or {}).get("doc_type"),
            limit=k,
        )
        return self._hits([(f.chunk_id, f.score, f.ranks, f.source_scores) for f in fused])

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
            _check_weights(weights, "weights")
        n, node = self._begin(query, k, filters, candidate_k)
        dense = self._dense(query, n, node, access)
        kw = self._keyword(query, n, node, filters, access)
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
            _check_weights(weights, "weights")
        n, node = self._begin(query, k, filters, candidate_k)
        dense, kw = await asyncio.gather(
            asyncio.to_thread(self._dense, query, n, node, access),
            asyncio.to_thread(self._keyword, query, n, node, filters, access),
        )
        return await asyncio.to_thread(self._fuse, dense, kw, k, weights)

    def get_chunk(self, chunk_id: str, *, access: AccessScope | None = None) -> Chunk | None:
        """The stored chunk (metadata included), or None (also when `access` may not see it)."""
        self._check_open()
        with self._lock:
            row = self._db.execute(
                "SELECT chunk_id, doc_id, text, metadata, parent_id FROM chunks WHERE chunk_id=?", (chunk_id,)
            ).fetchone()
        if row is None:
            return None
        meta = json.loads(row[3])
        if not F.acl_allows(meta, access):
            return None
        return Chunk(chunk_id=row[0], doc_id=row[1], text=row[2], metadata=meta, parent_id=row[4])

    def get_parent(self, parent_id: str, *, access: AccessScope | None = None) -> Parent | None:
        """The stored parent section, or None (also when `access` may see none of its chunks)."""
        self._check_open()
        with self._lock:
            row = self._db.execute(
                "SELECT parent_id, doc_id, text, section FROM parents WHERE parent_id=?", (parent_id,)
            ).fetchone()
            if row is None:
                return None
            if access is not None and not access.unrestricted:
                metas = [
                    json.loads(m)
                    for (m,) in self._db.execute(
                        "SELECT metadata FROM chunks WHERE parent_id=?", (parent_id,)
                    )
                ]
                if not any(F.acl_allows(m, access) for m in metas):
                    return None
        return Parent(parent_id=row[0], doc_id=row[1], text=row[2], section=row[3])

    def chunk_ids(self) -> set[str]:
        """Every chunk id in the docstore (the source of truth)."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT chunk_id FROM chunks")}

    def vector_chunk_ids(self) -> set[str]:
        """Chunk ids that have a vector in Chroma (for consistency checks)."""
        return {self._vid_to_cid.get(v, f"<stray:{v}>") for v in self.store.ids()}

    def document_metadata(self, doc_id: str) -> dict[str, Any] | None:
        """The stored document-level metadata of `doc_id`, or None if no such (live) document exists."""
        self._check_open()
        with self._lock:
            row = self._db.execute("SELECT metadata FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def can_modify(self, doc_id: str, access: AccessScope | None) -> bool:
        """True when `access` may replace or delete `doc_id`: it is new, or its current ACL admits the caller.

        A caller must never overwrite (or delete) a document it cannot read."""
        meta = self.document_metadata(doc_id)
        return meta is None or F.acl_allows(meta, access)

    def list_documents(self) -> list[dict[str, Any]]:
        """One dict per document: doc_id, content_hash, n_chunks, metadata, updated_at."""
        self._check_open()
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, content_hash, n_chunks, metadata, updated_at FROM documents ORDER BY doc_id"
            ).fetchall()
        return [
            {"doc_id": d, "content_hash": h, "n_chunks": n, "metadata": json.loads(m), "updated_at": u}
            for d, h, n, m, u in rows
        ]

    def stats(self) -> dict[str, Any]:
        """Counts and configuration, for the CLI and health checks."""
        self._check_open()
        from ragroute.tools.versions import family_of

        with self._lock:
            docs = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            parents = self._db.execute("SELECT COUNT(*) FROM parents").fetchone()[0]
            soft = self._db.execute("SELECT COUNT(*), MIN(deleted_at) FROM trash_documents").fetchone()
            updated = self._meta_get("updated_at")
            hard = int(self._meta_get("hard_deleted") or 0)
            sentence_count = self._db.execute("SELECT COUNT(*) FROM sentences").fetchone()[0]
            families: dict[str, set[str]] = {}
            versioned: set[str] = set()
            for meta in self._meta.values():
                fam = family_of(meta)
                if fam:
                    families.setdefault(fam, set()).add(str(meta.get("version")))
                    versioned.add(str(meta.get("doc_id")))
        return {
            "path": self.path,
            "version": self.version,
            "documents": docs,
            "chunks": chunks,
            "parents": parents,
            "versions": {
                "versioned_documents": len(versioned),
                "families": len(families),
                "families_with_several_versions": sum(1 for v in families.values() if len(v) > 1),
            },
            "soft_deleted": soft[0],
            "oldest_soft_delete": _iso(soft[1]),
            "hard_deleted": hard,
            "last_update": _iso(float(updated) if updated else None),
            "query_embedding_cache": self._query_vectors.stats(),
            "vectors": self.store.count(),
            "bm25": self.bm25.stats(),
            "embedding": embedder_name(self.embedder),
            "embedding_dim": self._dim,
            "sentence_vectors": sentence_count,
            "chroma_mode": self.config.chroma_mode,
            "collection": self.config.collection,
        }

    def close(self) -> None:
        """Flush the BM25 snapshot, close SQLite and release the lock (idempotent)."""
        if self._closed:
            return
        S.unregister(self)
        try:
            self.flush()
        finally:
            self._closed = True
            self._db.close()
            self.store.close()
            _release_lock(self.path)

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


def _iso(ts: float | None) -> str | None:
    """A UNIX time as an ISO UTC timestamp (None stays None)."""
    if ts is None:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(float(ts), dt.UTC).isoformat(timespec="seconds")


def open_index(path: str | Path | None = None, **config_kw: Any) -> HybridIndex:
    """Convenience alias for `HybridIndex.open`."""
    return HybridIndex.open(str(path) if path is not None else None, **config_kw)
