"""Search helpers shared by the facade and the embedded backend: query checks, the filter + ACL scope of
keyword search, dense results re-checked against the scope, RRF fusion and hit assembly."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cachetools
import numpy as np
from ragroute.tools import filters as F
from ragroute.tools.errors import InputError, check_unicode
from ragroute.tools.hybrid import rrf_fuse, validate_weights
from ragroute.tools.index.backend import SearchScope
from ragroute.tools.index.config import MAX_K, IndexConfig
from ragroute.tools.index.records import dumps
from ragroute.tools.types import Chunk, SearchHit

# (chunk_id, score, rank per retriever, raw score per retriever), best first
Ranked = tuple[str, float, dict[str, int | None], dict[str, float]]
_SCOPE_CACHE_SIZE = 64


def validate_query(query: Any, k: Any, candidate_k: Any, default_candidate_k: int) -> int:
    """Check a query and its sizes; the number of candidates to fetch from each retriever."""
    if not isinstance(query, str) or not query.strip():
        raise InputError("query must be a non-empty string")
    check_unicode(query, "query")  # else the embedder's tokenizer would raise TypeError
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InputError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
    cand = default_candidate_k if candidate_k is None else candidate_k
    if not isinstance(cand, int) or isinstance(cand, bool) or cand < 1:
        raise InputError(f"candidate_k must be a positive integer, got {candidate_k!r}")
    return max(cand, k)


class ScopeCache:
    """Chunks passing a filter + ACL, as (keyword-index mask, id set), per contents version (LRU of 64)."""

    def __init__(self) -> None:
        self._entries: cachetools.LRUCache[tuple[str, str, int], tuple[np.ndarray, set[str]]] = (
            cachetools.LRUCache(_SCOPE_CACHE_SIZE)
        )
        self._guard = threading.Lock()  # cachetools caches are not thread-safe

    def clear(self) -> None:
        """Forget every entry (the contents changed)."""
        with self._guard:
            self._entries.clear()

    def allowed(
        self,
        scope: SearchScope,
        version: int,
        compute: Callable[[], tuple[np.ndarray, set[str]]],
    ) -> tuple[np.ndarray, set[str]] | None:
        """The cached or computed (mask, ids) of `scope`; None when the scope admits everything."""
        access = scope.access
        if scope.node is None and (access is None or access.unrestricted):
            return None
        key = (F.describe(scope.filters), dumps([access.groups, access.clearance]) if access else "", version)
        with self._guard:
            hit = self._entries.get(key)
        if hit is not None:
            return hit
        value = compute()
        with self._guard:
            self._entries[key] = value
        return value


def in_scope(
    pairs: Sequence[tuple[str, float]],
    chunk_of: Mapping[str, str],
    meta_of: Mapping[str, dict[str, Any]],
    scope: SearchScope,
) -> list[tuple[str, float]]:
    """Dense (vector_id, score) results as (chunk_id, score), kept only if the docstore knows the chunk and
    the filter + ACL admit it (defence in depth behind the vector store's own `where`)."""
    out = []
    for vid, score in pairs:
        cid = chunk_of.get(vid)
        if cid is not None and F.matches(scope.node, meta_of[cid], scope.access):
            out.append((cid, score))
    return out


def single(name: str, pairs: Sequence[tuple[str, float]], k: int) -> list[Ranked]:
    """One retriever's best `k` results in fused form (the other retriever's rank is None)."""
    other = "bm25" if name == "dense" else "dense"
    return [(cid, s, {name: i, other: None}, {name: s}) for i, (cid, s) in enumerate(pairs[:k], 1)]


def fuse(
    dense: Sequence[tuple[str, float]],
    keyword: Sequence[tuple[str, float]],
    k: int,
    config: IndexConfig,
    weights: dict[str, float] | None,
    doc_types: Mapping[str, str | None],
) -> list[Ranked]:
    """Weighted RRF of the two candidate lists (per-call weights over the configured ones), best `k`."""
    w = config.weights if weights is None else {**config.weights, **validate_weights(weights)}
    fused = rrf_fuse(
        {"dense": dense, "bm25": keyword},
        rrf_k=config.rrf_k,
        weights=w,
        doc_type_weights=config.doc_type_weights,
        doc_type_of=doc_types.get,
        limit=k,
    )
    return [(f.chunk_id, f.score, f.ranks, f.source_scores) for f in fused]


def to_hits(ranked: Sequence[Ranked], chunks: Mapping[str, Chunk]) -> list[SearchHit]:
    """SearchHits for ranked ids, skipping chunks deleted between retrieval and lookup."""
    hits = []
    for cid, score, ranks, scores in ranked:
        chunk = chunks.get(cid)
        if chunk is None:
            continue
        hits.append(
            SearchHit(
                chunk_id=cid,
                doc_id=chunk.doc_id,
                text=chunk.text,
                score=score,
                metadata=dict(chunk.metadata),
                ranks=ranks,
                source_scores=scores,
                parent_id=chunk.parent_id,
            )
        )
    return hits
