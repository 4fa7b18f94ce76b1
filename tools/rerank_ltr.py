"""Learning-to-rank features of a candidate list and the shipped pointwise model (models/rerank_ltr.json).

Every feature is something the search already computed (fused score and rank, each source's rank and raw
score) or what the MaxSim reranker computes (best sentence cosine), plus the share of query terms in the
title and the freshness factor (1.0 when freshness decay is off or the hit is undated). Trained by
evals/benchmarks/rerank_ltr.py on SciFact train and HotpotQA dev qrels (logistic regression, relevant
vs not); applied with numpy (tools/learned.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from ragroute.tools.extractive import content_terms, overlap
from ragroute.tools.learned import LogisticModel

MODEL_PATH = Path(__file__).resolve().parent / "models" / "rerank_ltr.json"
FEATURES = (
    "fused_norm",  # fused score, min-max within the list
    "fused_recip_rank",  # 1 / position in the fused list
    "dense_recip_rank",  # 1 / rank in the dense list (0 when dense did not return it)
    "bm25_recip_rank",
    "dense_score",  # raw cosine
    "bm25_norm",  # BM25 score / the list's best BM25 score
    "in_both",  # returned by both sources
    "maxsim",  # best sentence cosine (heading in context)
    "maxsim_norm",  # the same, min-max within the list
    "maxsim_margin",  # minus the list's best
    "title_match",  # share of query terms in the title
    "freshness",
)


def _minmax(values: np.ndarray) -> np.ndarray:
    span = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / span if span > 1e-12 else np.ones_like(values)


def _recip(rank: object) -> float:
    return 1.0 / float(rank) if isinstance(rank, int | float) and rank > 0 else 0.0


def features(query: str, hits: list[dict], maxsim: np.ndarray) -> np.ndarray:
    """One row of FEATURES per hit (hits in fused order; `maxsim`: best sentence cosine per hit)."""
    n = len(hits)
    if n == 0:
        return np.zeros((0, len(FEATURES)))
    fused = np.asarray([float(h.get("score", 0.0)) for h in hits])
    ranks = [h.get("ranks") or {} for h in hits]
    scores = [h.get("source_scores") or {} for h in hits]
    bm25 = np.asarray([float(s.get("bm25") or 0.0) for s in scores])
    best_bm25 = float(bm25.max()) if bm25.max() > 0 else 1.0
    terms = content_terms(query)
    sims = np.asarray(maxsim, dtype=float)
    cols = [
        _minmax(fused),
        1.0 / np.arange(1, n + 1),
        np.asarray([_recip(r.get("dense")) for r in ranks]),
        np.asarray([_recip(r.get("bm25")) for r in ranks]),
        np.asarray([float(s.get("dense") or 0.0) for s in scores]),
        bm25 / best_bm25,
        np.asarray([1.0 if r.get("dense") and r.get("bm25") else 0.0 for r in ranks]),
        sims,
        _minmax(sims),
        sims - sims.max(),
        np.asarray([overlap(terms, str(h.get("title") or "")) for h in hits]),
        np.asarray([float(h.get("freshness", 1.0)) for h in hits]),
    ]
    return np.column_stack(cols)


@functools.cache
def default_model() -> LogisticModel:
    """The shipped model (tools/models/rerank_ltr.json), read once."""
    return LogisticModel.load(MODEL_PATH)
