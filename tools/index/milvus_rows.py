"""Rows of one document write for the Milvus collections (chunks, parents, sentences), checked against
Milvus's field sizes."""

from __future__ import annotations

from typing import Any

from ragroute.tools.errors import InputError
from ragroute.tools.index import milvus_filters as MF
from ragroute.tools.index import sentences as S
from ragroute.tools.index.milvus_schema import PLACEHOLDER, TEXT_LEN
from ragroute.tools.index.records import DocumentWrite

_PIECE_CHARS = TEXT_LEN // 4  # a UTF-8 character takes at most 4 bytes


def _fits(text: str, what: str) -> str:
    if len(text.encode("utf-8", "surrogatepass")) > TEXT_LEN:
        raise InputError(
            f"{what} is longer than Milvus's {TEXT_LEN}-byte text limit; split it into smaller chunks"
        )
    return text


def chunk_rows(
    doc: DocumentWrite, gen: str, vectors: dict[str, list[float]], tokens: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """The chunk rows of one document write, tagged with its generation."""
    rows = []
    for r in doc.chunks:
        groups, level = MF.acl_columns(r.meta)
        doc_type = r.meta.get("doc_type")
        rows.append(
            {
                "pk": f"{r.chunk_id}#{gen}",
                "chunk_id": r.chunk_id,
                "doc_id": doc.doc_id,
                "gen": gen,
                "ord": r.ord,
                "vector_id": r.vector_id,
                "parent_id": r.parent_id or "",
                "text": _fits(r.text, f"chunk {r.chunk_id!r}"),
                "terms": _fits(" ".join(tokens[r.chunk_id]), f"chunk {r.chunk_id!r}'s terms"),
                "dense": vectors[r.vector_id],
                "metadata": r.meta,
                "filt": MF.filter_columns(r.meta),
                "access_groups": groups,
                "security_level": level,
                "doc_type": "" if doc_type is None else str(doc_type)[:256],
                "deleted": False,
            }
        )
    return rows


def parent_rows(doc: DocumentWrite, gen: str) -> list[dict[str, Any]]:
    """The parent rows of one document write; a long section is stored in pieces."""
    rows = []
    for p in doc.parents:
        text = p.text or ""
        pieces = [text[i : i + _PIECE_CHARS] for i in range(0, len(text), _PIECE_CHARS)] or [""]
        for i, piece in enumerate(pieces):
            rows.append(
                {
                    "pk": f"{p.parent_id}#{gen}#{i}",
                    "parent_id": p.parent_id,
                    "doc_id": doc.doc_id,
                    "gen": gen,
                    "piece": i,
                    "text": piece,
                    "section": (p.section or "")[:_PIECE_CHARS],
                    "placeholder": PLACEHOLDER,
                }
            )
    return rows


def sentence_rows_of(doc_id: str, gen: str, rows: list[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
    """Sentence-vector rows from (doc_id, key, blob) triples."""
    return [
        {"pk": f"{key}#{gen}", "key": key, "doc_id": doc_id, "gen": gen, "vec": S.decode(blob).tolist()}
        for _, key, blob in rows
    ]
