"""Sentence vectors computed at ingest, so the offline reranker and generator do not re-embed per query.

The MaxSim reranker (tools/rerankers.py) and the extractive generator (tools/extractive.py) embed every
sentence of every candidate chunk, "Title Section: sentence", for each question: the largest share of an
offline query's time. The index computes those vectors once, when a chunk is ingested, and keeps them in
its SQLite docstore (float16, 768 bytes per sentence for MiniLM); `agent.providers.embedder()` looks them up
in every open index before calling the model. A vector is keyed by the model name and the exact text, so a
lookup can only return the vector the model gives for that text; anything not stored (an index built
before this existed, a parent section's text, the question) is embedded as before.

Only indexes embedded with the offline sentence model (`SENTENCE_MODEL`) store them: that is the model the
offline reranker and generator use; an index with another embedder would compute vectors nobody reads.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from tools.extractive import heading_of, in_context, split_sentences

SENTENCE_MODEL = "minilm"  # the embedder name agent.providers.embedder() uses for sentences
STORED_DTYPE = np.float16  # bf16-autocast vectors carry ~3 significant digits; float16 keeps them


class SentenceSource(Protocol):
    """What the registry needs from an index: stored vectors for keys (missing keys absent)."""

    def sentence_vectors(self, keys: list[str]) -> dict[str, np.ndarray]: ...


def sentence_key(model: str, text: str) -> str:
    """Stable key of one embedded text under one model."""
    return hashlib.sha1(f"{model}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()


def chunk_sentences(text: str, metadata: dict[str, Any]) -> list[str]:
    """The texts the offline reranker embeds for a chunk: each sentence behind its "Title Section" heading.

    Mirrors MaxSimReranker.rerank (a chunk with no splittable sentence is embedded whole)."""
    heading = heading_of({"metadata": metadata})
    return [in_context(heading, s) for s in (split_sentences(text) or [text]) if s]


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
