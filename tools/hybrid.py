"""Reciprocal Rank Fusion of ranked lists: score(c) = sum_i w_i / (rrf_k + rank_i(c)), deduplicated by chunk
id, with per-retriever weights that a chunk's `doc_type` can override (technical leans keyword, conceptual
leans semantic).

The one fusion of the project: the index fuses its dense and BM25 lists with `rrf_fuse`, the rerank node
fuses the per-query hit lists (original query, variants, sub-questions) with `fuse_hits`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragroute.tools.errors import ConfigError

DEFAULT_RRF_K = 60
RETRIEVERS = ("dense", "bm25")
# Opt-in per-doc_type leans (IndexConfig.doc_type_weights). They are off by default on purpose: RRF scores
# of neighbouring ranks differ by ~1.6% at rrf_k=60, so a lean of 0.8/1.2 lifts a conceptual chunk at dense
# rank 8 above a technical chunk at dense rank 1 when BM25 finds neither (measured on the tests' tiny corpus,
# where it broke a plain paraphrase query). Use small leans (a few percent) when you enable them.
SUGGESTED_DOC_TYPE_WEIGHTS: dict[str, dict[str, float]] = {
    "technical": {"dense": 0.97, "bm25": 1.03},
    "reference": {"dense": 0.97, "bm25": 1.03},
    "conceptual": {"dense": 1.03, "bm25": 0.97},
}
DEFAULT_DOC_TYPE_WEIGHTS: dict[str, dict[str, float]] = {}


@dataclass
class Fused:
    """A fused result: chunk id, RRF score, and its 1-based rank and raw score in each input list."""

    chunk_id: str
    score: float
    ranks: dict[str, int | None] = field(default_factory=dict)
    source_scores: dict[str, float] = field(default_factory=dict)


def validate_weights(
    weights: Any, *, what: str = "weights", known: Collection[str] | None = RETRIEVERS
) -> dict[str, float]:
    """Check a retriever-weight mapping: a dict of `known` names (None: any), finite non-negative numbers."""
    if not isinstance(weights, Mapping):
        raise ConfigError(f"{what} must be a dict like {{'dense': 1.0, 'bm25': 1.0}}, got {weights!r}")
    if known is not None:
        unknown = set(weights) - set(known)
        if unknown:
            raise ConfigError(f"{what}: unknown retriever(s) {sorted(unknown)}; options: {', '.join(known)}")
    out: dict[str, float] = {}
    for name, w in weights.items():
        if not isinstance(w, int | float) or isinstance(w, bool) or w < 0 or w != w or w == float("inf"):
            raise ConfigError(f"{what}[{name!r}] must be a finite number >= 0, got {w!r}")
        out[str(name)] = float(w)
    return out


def rrf_fuse(
    lists: Mapping[str, Sequence[tuple[str, float]]],
    *,
    rrf_k: int = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
    doc_type_weights: Mapping[str, Mapping[str, float]] | None = None,
    doc_type_of: Callable[[str], str | None] | None = None,
    limit: int | None = None,
) -> list[Fused]:
    """Fuse ranked (chunk_id, score) lists by weighted RRF; best first, ties broken by chunk id.

    `weights` are the per-retriever weights (missing names weigh 1.0); when `doc_type_of(chunk_id)` names a
    type present in `doc_type_weights`, that type's weights multiply them for that chunk (so a caller's
    weight override and the doc-type lean compose).
    A duplicate id inside one list keeps its best (first) rank.
    """
    if rrf_k < 0:
        raise ConfigError(f"rrf_k must be >= 0, got {rrf_k}")
    base = dict(weights or {})
    names = list(lists)
    ranks: dict[str, dict[str, int]] = {}
    raw: dict[str, dict[str, float]] = {}
    order: list[str] = []
    for name in names:
        for pos, (cid, sc) in enumerate(lists[name], start=1):
            r = ranks.setdefault(cid, {})
            if cid not in raw:
                raw[cid] = {}
                order.append(cid)
            if name not in r:
                r[name] = pos
                raw[cid][name] = float(sc)
    fused: list[Fused] = []
    for cid in order:
        lean: Mapping[str, float] = {}
        if doc_type_weights and doc_type_of is not None:
            dt = doc_type_of(cid)
            if dt is not None and dt in doc_type_weights:
                lean = doc_type_weights[dt]
        score = sum(
            base.get(name, 1.0) * lean.get(name, 1.0) / (rrf_k + rank) for name, rank in ranks[cid].items()
        )
        fused.append(
            Fused(
                chunk_id=cid,
                score=score,
                ranks={name: ranks[cid].get(name) for name in names},
                source_scores=raw[cid],
            )
        )
    fused.sort(key=lambda f: (-f.score, f.chunk_id))
    return fused if limit is None else fused[:limit]


def fuse_hits(
    lists: Sequence[Sequence[Mapping[str, Any]]], *, rrf_k: int = DEFAULT_RRF_K
) -> list[dict[str, Any]]:
    """Fuse any number of ranked hit lists (dicts with a `chunk_id`, e.g. one per query) by `rrf_fuse`.

    Every list weighs 1.0. Each fused hit is its first occurrence (list order) with `score` the fused score
    and `retrieval_score` its original one; best first, ties broken by chunk id.
    """
    # only ranks matter to RRF; the hits' own scores stay on the hits
    named = {str(i): [(str(h["chunk_id"]), 0.0) for h in hits] for i, hits in enumerate(lists)}
    first: dict[str, Mapping[str, Any]] = {}
    for hits in lists:
        for hit in hits:
            first.setdefault(str(hit["chunk_id"]), hit)
    return [
        {
            **first[f.chunk_id],
            "retrieval_score": first[f.chunk_id].get("score"),
            "score": f.score,
        }
        for f in rrf_fuse(named, rrf_k=rrf_k)
    ]
