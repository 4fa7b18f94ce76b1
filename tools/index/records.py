"""What the index writes, in backend-neutral form: validated chunk records of one document per write.

Every chunk gets a content key, ``<chunk_id>#<hash of embedded text + metadata>`` (its vector id), so a
backend can tell a changed chunk from an unchanged one without comparing texts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragroute.tools.errors import InputError
from ragroute.tools.types import Chunk, Parent


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys): stored metadata and the input of content keys."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


def embed_text(text: str, meta: dict[str, Any]) -> str:
    """What gets embedded and keyword-indexed: a title/section header in front of the chunk text."""
    head = " > ".join(str(x) for x in (meta.get("title"), meta.get("section")) if x)
    return f"{head}\n{text}" if head and not text.startswith(head) else text


@dataclass
class ChunkRecord:
    """One validated chunk: ids, position, text, full metadata and the text its vector is made from."""

    chunk_id: str
    vector_id: str
    ord: int
    text: str
    meta: dict[str, Any]
    parent_id: str | None
    embed_text: str


@dataclass
class DocumentWrite:
    """One document to add or replace: its chunk records, parent sections, content hash and metadata."""

    doc_id: str
    chunks: list[ChunkRecord]
    parents: list[Parent]
    content_hash: str
    metadata: dict[str, Any]


def prepare_chunks(doc_id: str, chunks: list[Chunk], doc_metadata: dict[str, Any]) -> list[ChunkRecord]:
    """Validate one document's chunks and build their records (InputError names the bad chunk)."""
    if not isinstance(doc_id, str) or not doc_id:
        raise InputError(f"doc_id must be a non-empty string, got {doc_id!r}")
    rows: list[ChunkRecord] = []
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
            meta = json.loads(dumps(meta))
        except (TypeError, ValueError) as exc:
            raise InputError(f"chunk {ch.chunk_id!r}: metadata is not JSON-serializable: {exc}") from exc
        bad = [k for k in meta if not k or k[0] in "$#" or k.startswith("chroma:")]
        if bad:
            raise InputError(
                f"chunk {ch.chunk_id!r}: metadata key(s) {bad} are not allowed (empty, or starting "
                "with '$', '#' or 'chroma:')"
            )
        etext = embed_text(ch.text, meta)
        digest = hashlib.sha1(f"{etext}\x00{dumps(meta)}".encode()).hexdigest()[:16]
        rows.append(
            ChunkRecord(ch.chunk_id, f"{ch.chunk_id}#{digest}", i, ch.text, meta, ch.parent_id, etext)
        )
    return rows


def prepare_batch(batch: Sequence[tuple[Any, ...]]) -> list[DocumentWrite]:
    """Validate (doc_id, chunks, parents, content_hash[, doc_metadata]) tuples into document writes."""
    prepared: list[DocumentWrite] = []
    seen_docs: set[str] = set()
    for item in batch:
        if len(item) == 4:
            doc_id, chunks, parents, content_hash = item
            doc_metadata: dict[str, Any] = {}
        elif len(item) == 5:
            doc_id, chunks, parents, content_hash, doc_metadata = item
        else:
            raise InputError("upsert_documents items are (doc_id, chunks, parents, content_hash[, metadata])")
        if doc_id in seen_docs:
            raise InputError(f"document {doc_id!r} appears twice in one batch")
        seen_docs.add(doc_id)
        if not isinstance(content_hash, str) or not content_hash:
            raise InputError(f"document {doc_id!r}: content_hash must be a non-empty string")
        for p in parents or []:
            if not isinstance(p, Parent):
                raise InputError(f"document {doc_id!r}: parents must be Parent objects")
        prepared.append(
            DocumentWrite(
                doc_id,
                prepare_chunks(doc_id, chunks, doc_metadata or {}),
                list(parents or []),
                content_hash,
                doc_metadata or {},
            )
        )
    seen_chunks: set[str] = set()
    for doc in prepared:
        for r in doc.chunks:
            if r.chunk_id in seen_chunks:
                raise InputError(f"chunk id {r.chunk_id!r} appears in two documents of one batch")
            seen_chunks.add(r.chunk_id)
    return prepared
