"""Sentence vectors computed at ingest, so the offline reranker and generator do not re-embed per query.

The MaxSim reranker (tools/rerankers.py) and the extractive generator (tools/extractive.py) embed every
sentence of every candidate chunk, "Title Section: sentence", for each question: the largest share of an
offline query's time. The index stores a vector for each of those texts when the chunk is ingested, in its
SQLite docstore (float16, 768 bytes per sentence for MiniLM), and `ragroute.runtime.providers.embedder()`
looks them up in every open index before calling the model. Anything not stored (an index built before this
existed, a sentence past the model's 256-token window, a parent section's text, the question) is embedded as
before.

The stored vector is the sentence as the model read it inside its chunk: the mean of the sentence's
contextual token embeddings from the forward pass that embeds the chunk ("late chunking"), so it costs no
extra model call at ingest. Embedding every sentence on its own would have tripled ingest time; the
contextual vectors keep the reranker's gain (nDCG@10 after MaxSim, per-query sentence embedding vs late
vectors: SciFact train 400 claims 0.715 vs 0.712, HotpotQA dev 0.861 vs 0.862; no rerank 0.703 / 0.834).

Only indexes embedded with the offline sentence model (`SENTENCE_MODEL`) store them: that is the model the
offline reranker and generator use; an index with another embedder would compute vectors nobody reads.
`embed_chunks` and `sentence_rows` compute them at write time; `register`/`lookup` serve them process-wide.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from ragroute.tools.embeddings import Embedder
from ragroute.tools.extractive import heading_of, in_context
from ragroute.tools.index.records import ChunkRecord
from ragroute.tools.sentences import split_sentences

SENTENCE_MODEL = "minilm"  # the embedder name ragroute.runtime.providers.embedder() uses for sentences
STORED_DTYPE = np.float16  # bf16-autocast vectors carry ~3 significant digits; float16 keeps them


class SentenceSource(Protocol):
    """What the registry needs from an index: stored vectors for keys (missing keys absent)."""

    def sentence_vectors(self, keys: list[str]) -> dict[str, np.ndarray]: ...


def sentence_key(model: str, text: str) -> str:
    """Stable key of one embedded text under one model."""
    return hashlib.sha1(f"{model}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()


def sentence_pairs(text: str, metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """(sentence, text the offline reranker embeds for it: the sentence behind its "Title Section"
    heading) for every sentence of a chunk. Mirrors MaxSimReranker.rerank (a chunk with no splittable
    sentence is embedded whole)."""
    heading = heading_of({"metadata": metadata})
    return [(s, in_context(heading, s)) for s in (split_sentences(text) or [text]) if s]


def chunk_sentences(text: str, metadata: dict[str, Any]) -> list[str]:
    """The texts the offline reranker embeds for a chunk (see sentence_pairs)."""
    return [embedded for _, embedded in sentence_pairs(text, metadata)]


def sentence_spans(embed_text: str, text: str, sentences: list[str]) -> list[tuple[int, int]]:
    """Character spans of the chunk's sentences inside the text its chunk vector is computed from (the
    chunk text behind a header); (0, 0) for a sentence not found verbatim (split_sentences strips
    bullets and whitespace, so almost all are)."""
    pos = embed_text.find(text) if text and text in embed_text else 0
    spans = []
    for sentence in sentences:
        start = embed_text.find(sentence, pos)
        if start < 0:
            spans.append((0, 0))
            continue
        spans.append((start, start + len(sentence)))
        pos = start + len(sentence)
    return spans


def encode(vectors: np.ndarray) -> list[bytes]:
    """Rows of a float matrix as compact blobs."""
    return [row.tobytes() for row in np.asarray(vectors, dtype=STORED_DTYPE)]


def decode(blob: bytes) -> np.ndarray:
    """A stored blob back to a float32 vector, re-normalised (float16 rounding moves the norm by ~1e-3)."""
    vec = np.frombuffer(blob, dtype=STORED_DTYPE).astype(np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


_lock = threading.Lock()
_sources: weakref.WeakSet[Any] = weakref.WeakSet()


def register(source: SentenceSource) -> None:
    """Make an open index's stored vectors available to lookups in this process."""
    with _lock:
        _sources.add(source)


def unregister(source: SentenceSource) -> None:
    """Stop looking in `source` (the index closed)."""
    with _lock:
        _sources.discard(source)


def lookup(model: str, texts: Iterable[str]) -> dict[str, np.ndarray]:
    """Stored vectors for the texts any open index holds under `model` (text -> vector)."""
    if model != SENTENCE_MODEL:
        return {}
    wanted = {sentence_key(model, t): t for t in dict.fromkeys(texts)}
    if not wanted:
        return {}
    with _lock:
        sources = list(_sources)
    found: dict[str, np.ndarray] = {}
    for source in sources:
        missing = [k for k in wanted if wanted[k] not in found]
        if not missing:
            break
        try:
            for key, vec in source.sentence_vectors(missing).items():
                found[wanted[key]] = vec
        except Exception:  # a closing index: the model computes what it would have returned
            continue
    return found


def embed_chunks(
    embedder: Embedder, rows: Sequence[ChunkRecord], *, with_sentences: bool
) -> tuple[list[list[float]], dict[str, bytes]]:
    """Chunk vectors, and sentence key -> stored blob for the sentences read in the same forward pass."""
    if not with_sentences:
        return embedder.embed_documents([r.embed_text for r in rows]), {}
    pairs = [sentence_pairs(r.text, r.meta) for r in rows]
    spans = [
        sentence_spans(r.embed_text, r.text, [s for s, _ in p]) for r, p in zip(rows, pairs, strict=True)
    ]
    embed_with_spans = embedder.embed_with_spans  # type: ignore[attr-defined]
    embs, pooled = embed_with_spans([r.embed_text for r in rows], spans)
    late: dict[str, bytes] = {}
    for p, vecs in zip(pairs, pooled, strict=True):
        for (_, embedded), vec in zip(p, vecs, strict=True):
            key = sentence_key(SENTENCE_MODEL, embedded)
            if vec is not None and key not in late:
                late[key] = encode(vec[None, :])[0]
    return embs, late


def sentence_rows(
    docs: Sequence[tuple[str, Sequence[ChunkRecord]]],
    late: dict[str, bytes],
    stored: Callable[[list[str]], dict[str, bytes]],
) -> dict[str, list[tuple[str, str, bytes]]]:
    """(doc_id, key, blob) rows of each document's sentence vectors: from `late` (this ingest's forward
    pass), else `stored` (an unchanged chunk); a sentence the model never read (past its window) is left to
    query time."""
    keyed = {  # each document's distinct sentence keys
        doc_id: list(
            dict.fromkeys(
                sentence_key(SENTENCE_MODEL, t) for r in rows for t in chunk_sentences(r.text, r.meta)
            )
        )
        for doc_id, rows in docs
    }
    known = dict(late)
    known.update(stored([k for keys in keyed.values() for k in keys if k not in known]))
    return {doc_id: [(doc_id, k, known[k]) for k in keys if k in known] for doc_id, keys in keyed.items()}
