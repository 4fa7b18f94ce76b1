"""The SQLite docstore of an embedded index: documents, chunks, parents, trash, sentence vectors, meta.

It is the source of truth of the embedded backend; every write is one transaction that also bumps the
persisted `version` when the contents change. Callers hold the backend's lock around these calls.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ragroute.tools.index.backend import Deletion
from ragroute.tools.index.records import DocumentWrite, dumps
from ragroute.tools.types import Chunk, Parent

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
_TRASH_TABLES = ("trash_documents", "trash_chunks", "trash_parents")
_BATCH = 500  # ids per `IN (...)` query, under SQLite's variable limit


class DocStore:
    """One docstore.sqlite file (WAL, autocommit outside explicit transactions)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(
            os.path.join(path, "docstore.sqlite"), check_same_thread=False, isolation_level=None
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ meta
    def meta_get(self, key: str) -> str | None:
        """A value of the meta table, or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def meta_set(self, key: str, value: Any) -> None:
        """Set a value of the meta table (as text)."""
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, str(value)))

    def version(self) -> int:
        """The persisted contents version."""
        return int(self.meta_get("version") or 0)

    def bump(self) -> None:
        """Inside a write transaction: a new version and the time of this change."""
        self.meta_set("version", self.version() + 1)
        self.meta_set("updated_at", time.time())

    def _count_hard_deletes(self, n: int) -> None:
        self.meta_set("hard_deleted", int(self.meta_get("hard_deleted") or 0) + n)

    def has_chunks(self) -> bool:
        """True when any chunk is stored."""
        return self.db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is not None

    def record_embedder(self, name: str, dim: int) -> str:
        """Record the embedder in use (and create version/uid on first open); the index uid."""
        with self.transaction():
            self.meta_set("embedding", name)
            self.meta_set("embedding_dim", dim)
            if self.meta_get("version") is None:
                self.meta_set("version", 0)
            if self.meta_get("uid") is None:
                self.meta_set("uid", uuid.uuid4().hex)
            return str(self.meta_get("uid"))

    # ------------------------------------------------------------------ chunk rows
    def chunk_map(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(chunk_id, vector_id, metadata) of every chunk."""
        return [
            (cid, vid, json.loads(meta))
            for cid, vid, meta in self.db.execute("SELECT chunk_id, vector_id, metadata FROM chunks")
        ]

    def retokenize(self, tokens_of: Callable[[str, dict[str, Any]], list[str]], signature: str) -> None:
        """Recompute every chunk's stored keyword tokens, tagged with the analyzer's signature."""
        with self.transaction() as db:
            rows = db.execute("SELECT chunk_id, text, metadata FROM chunks").fetchall()
            for cid, text, meta in rows:
                toks = tokens_of(text, json.loads(meta))
                db.execute("UPDATE chunks SET tokens=? WHERE chunk_id=?", (json.dumps(toks), cid))
            self.meta_set("analyzer", signature)

    def chunk_tokens(self) -> Iterator[tuple[str, list[str]]]:
        """(chunk_id, keyword tokens) of every chunk."""
        for cid, toks in self.db.execute("SELECT chunk_id, tokens FROM chunks"):
            yield cid, json.loads(toks)

    def chunks_by_vector_id(self, vector_ids: Sequence[str]) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(chunk_id, vector_id, text, metadata) of the chunks with these vector ids."""
        rows = []
        for start in range(0, len(vector_ids), _BATCH):
            part = list(vector_ids[start : start + _BATCH])
            rows += self.db.execute(
                "SELECT chunk_id, vector_id, text, metadata FROM chunks "
                f"WHERE vector_id IN ({','.join('?' * len(part))})",
                part,
            ).fetchall()
        return [(c, v, t, json.loads(m)) for c, v, t, m in rows]

    def chunk_rows(self, chunk_ids: Sequence[str]) -> dict[str, tuple[str, str, str | None]]:
        """chunk_id -> (doc_id, text, parent_id) for the ids stored."""
        if not chunk_ids:
            return {}
        return {
            cid: (doc_id, text, parent_id)
            for cid, doc_id, text, parent_id in self.db.execute(
                "SELECT chunk_id, doc_id, text, parent_id FROM chunks WHERE chunk_id IN "
                f"({','.join('?' * len(chunk_ids))})",
                list(chunk_ids),
            )
        }

    def document_chunks(self, doc_id: str) -> list[tuple[str, str]]:
        """(chunk_id, vector_id) of one document's chunks."""
        return self.db.execute("SELECT chunk_id, vector_id FROM chunks WHERE doc_id=?", (doc_id,)).fetchall()

    def owner_elsewhere(self, doc_id: str, chunk_ids: Sequence[str]) -> str | None:
        """The first of `chunk_ids` stored under a document other than `doc_id`, or None."""
        if not chunk_ids:
            return None
        q = ",".join("?" * len(chunk_ids))
        row = self.db.execute(
            f"SELECT chunk_id FROM chunks WHERE doc_id != ? AND chunk_id IN ({q})",
            (doc_id, *chunk_ids),
        ).fetchone()
        return row[0] if row else None

    def get_chunk(self, chunk_id: str) -> Chunk | None:
        """One stored chunk, metadata included."""
        row = self.db.execute(
            "SELECT chunk_id, doc_id, text, metadata, parent_id FROM chunks WHERE chunk_id=?", (chunk_id,)
        ).fetchone()
        if row is None:
            return None
        return Chunk(
            chunk_id=row[0], doc_id=row[1], text=row[2], metadata=json.loads(row[3]), parent_id=row[4]
        )

    def get_parent(self, parent_id: str) -> Parent | None:
        """One stored parent section."""
        row = self.db.execute(
            "SELECT parent_id, doc_id, text, section FROM parents WHERE parent_id=?", (parent_id,)
        ).fetchone()
        return None if row is None else Parent(parent_id=row[0], doc_id=row[1], text=row[2], section=row[3])

    def parent_chunk_metadata(self, parent_id: str) -> list[dict[str, Any]]:
        """Metadata of the chunks under one parent section."""
        return [
            json.loads(m)
            for (m,) in self.db.execute("SELECT metadata FROM chunks WHERE parent_id=?", (parent_id,))
        ]

    def chunk_ids(self) -> set[str]:
        """Every chunk id."""
        return {r[0] for r in self.db.execute("SELECT chunk_id FROM chunks")}

    # ------------------------------------------------------------------ documents
    def document_hash(self, doc_id: str) -> str | None:
        """Content hash of a live document, or None."""
        row = self.db.execute("SELECT content_hash FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def document_metadata(self, doc_id: str) -> dict[str, Any] | None:
        """Document-level metadata of a live document, or None."""
        row = self.db.execute("SELECT metadata FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def list_documents(self) -> list[dict[str, Any]]:
        """Live documents by doc_id: doc_id, content_hash, n_chunks, metadata, updated_at."""
        rows = self.db.execute(
            "SELECT doc_id, content_hash, n_chunks, metadata, updated_at FROM documents ORDER BY doc_id"
        ).fetchall()
        return [
            {"doc_id": d, "content_hash": h, "n_chunks": n, "metadata": json.loads(m), "updated_at": u}
            for d, h, n, m, u in rows
        ]

    def replace_documents(
        self,
        docs: Sequence[DocumentWrite],
        tokens: dict[str, list[str]],
        sentences: dict[str, list[tuple[str, str, bytes]]],
        *,
        sentences_stored: bool,
    ) -> None:
        """One transaction: swap each document's rows (reviving a soft-deleted one) and bump the version."""
        now = time.time()
        with self.transaction() as db:
            for doc in docs:
                doc_id = doc.doc_id
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
                            dumps(r.meta),
                            json.dumps(tokens[r.chunk_id]),
                            r.parent_id,
                        )
                        for r in doc.chunks
                    ],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO parents(parent_id, doc_id, text, section) VALUES (?,?,?,?)",
                    [(p.parent_id, doc_id, p.text, p.section or "") for p in doc.parents],
                )
                db.execute(
                    "INSERT OR REPLACE INTO documents(doc_id, content_hash, metadata, n_chunks, "
                    "updated_at) VALUES (?,?,?,?,?)",
                    (doc_id, doc.content_hash, dumps(doc.metadata), len(doc.chunks), now),
                )
                for table in _TRASH_TABLES:  # re-ingesting a soft-deleted document revives it
                    db.execute(f"DELETE FROM {table} WHERE doc_id=?", (doc_id,))
            if not sentences_stored:  # a later open with sentence vectors on fills them in
                self.meta_set("sentences_complete", 0)
            self.bump()

    def delete_document(self, doc_id: str, *, soft: bool) -> Deletion:
        """One transaction: drop the document's live rows (soft: into the trash; hard: the trash copy too)."""
        with self.transaction() as db:
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
                self.bump()
            if not soft and (n or trashed):
                self._count_hard_deletes(1)
        return Deletion(live=bool(n), trashed=bool(trashed))

    # ------------------------------------------------------------------ trash
    def deleted_documents(self) -> list[dict[str, Any]]:
        """Soft-deleted documents, oldest deletion first."""
        rows = self.db.execute(
            "SELECT doc_id, n_chunks, metadata, updated_at, deleted_at FROM trash_documents "
            "ORDER BY deleted_at, doc_id"
        ).fetchall()
        return [
            {"doc_id": d, "n_chunks": n, "metadata": json.loads(m), "updated_at": u, "deleted_at": t}
            for d, n, m, u, t in rows
        ]

    def trashed(self, doc_id: str) -> tuple[str, dict[str, Any], list[Chunk], list[Parent]] | None:
        """(content_hash, metadata, chunks, parents) of a soft-deleted document, or None."""
        doc = self.db.execute(
            "SELECT content_hash, metadata FROM trash_documents WHERE doc_id=?", (doc_id,)
        ).fetchone()
        if doc is None:
            return None
        chunks = [
            Chunk(chunk_id=c, doc_id=doc_id, text=t, metadata=json.loads(m), parent_id=p)
            for c, t, m, p in self.db.execute(
                "SELECT chunk_id, text, metadata, parent_id FROM trash_chunks WHERE doc_id=? ORDER BY ord",
                (doc_id,),
            )
        ]
        parents = [
            Parent(parent_id=p, doc_id=doc_id, text=t, section=s)
            for p, t, s in self.db.execute(
                "SELECT parent_id, text, section FROM trash_parents WHERE doc_id=?", (doc_id,)
            )
        ]
        return doc[0], json.loads(doc[1]), chunks, parents

    def purge(self, cutoff: float) -> list[str]:
        """One transaction: forget documents soft-deleted at or before `cutoff`; their ids."""
        with self.transaction() as db:
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
                self._count_hard_deletes(len(ids))
        return ids

    # ------------------------------------------------------------------ sentence vectors
    def sentence_blobs(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Stored sentence vector blobs by key."""
        out: dict[str, bytes] = {}
        for start in range(0, len(keys), _BATCH):
            part = list(keys[start : start + _BATCH])
            q = ",".join("?" * len(part))
            out.update(self.db.execute(f"SELECT key, vec FROM sentences WHERE key IN ({q})", part))
        return out

    def documents_without_sentences(self) -> list[str]:
        """Live documents with no stored sentence vector."""
        return [
            d
            for (d,) in self.db.execute(
                "SELECT doc_id FROM documents WHERE doc_id NOT IN (SELECT DISTINCT doc_id FROM sentences)"
            )
        ]

    def sentence_doc_ids(self) -> set[str]:
        """Documents with at least one stored sentence vector."""
        return {d for (d,) in self.db.execute("SELECT DISTINCT doc_id FROM sentences")}

    def chunk_texts(self, doc_ids: Sequence[str]) -> list[tuple[str, str, dict[str, Any]]]:
        """(doc_id, text, metadata) of the chunks of these documents."""
        q = ",".join("?" * len(doc_ids))
        return [
            (d, t, json.loads(m))
            for d, t, m in self.db.execute(
                f"SELECT doc_id, text, metadata FROM chunks WHERE doc_id IN ({q})", list(doc_ids)
            )
        ]

    def add_sentences(self, rows: Sequence[tuple[str, str, bytes]]) -> None:
        """Store (doc_id, key, blob) rows, keeping ones already there."""
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO sentences(doc_id, key, vec) VALUES (?,?,?)", rows)

    # ------------------------------------------------------------------ stats
    def counts(self) -> dict[str, Any]:
        """Row counts, soft/hard deletions and the last update time."""
        one = self.db.execute
        soft = one("SELECT COUNT(*), MIN(deleted_at) FROM trash_documents").fetchone()
        updated = self.meta_get("updated_at")
        return {
            "documents": one("SELECT COUNT(*) FROM documents").fetchone()[0],
            "chunks": one("SELECT COUNT(*) FROM chunks").fetchone()[0],
            "parents": one("SELECT COUNT(*) FROM parents").fetchone()[0],
            "soft_deleted": soft[0],
            "oldest_soft_delete": soft[1],
            "hard_deleted": int(self.meta_get("hard_deleted") or 0),
            "updated_at": float(updated) if updated else None,
            "sentence_vectors": one("SELECT COUNT(*) FROM sentences").fetchone()[0],
        }
