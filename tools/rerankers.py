"""Rerankers: no-op, offline sentence MaxSim (MiniLM), offline learned (LTR), cross-encoder directory, Cohere.

Each takes hit dicts (SearchHit.to_dict()) and returns copies ordered best first with `rerank_score`.
`OFFLINE_DEFAULT` is what Context.reranker "local" (and "auto" without COHERE_API_KEY) means: the
reranker whose nDCG@10 gain over plain hybrid exceeds two standard errors under k-fold cross-validation
on BOTH SciFact train and HotpotQA dev, else "none" (evals/benchmarks/rerank_ltr.py,
evals/results/rerank_ltr_{scifact,hotpotqa}.md). MaxSim and LTR help on HotpotQA (+0.027 / +0.028) but
not measurably on SciFact (+0.003 / +0.006, within two standard errors), so it is "none"; "maxsim" and
"ltr" stay selectable by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from ragroute.tools import rerank_ltr as ltr
from ragroute.tools.errors import ProviderError
from ragroute.tools.extractive import heading_of, in_context
from ragroute.tools.learned import LogisticModel
from ragroute.tools.sentences import split_sentences

OFFLINE_DEFAULT = "none"


def _with_scores(hits: list[dict], scores: list[float], top_n: int | None) -> list[dict]:
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    out = [{**hits[i], "rerank_score": float(scores[i])} for i in order]
    return out[:top_n] if top_n else out


def _minmax(values: np.ndarray) -> np.ndarray:
    span = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / span if span > 1e-12 else np.ones_like(values)


class NoReranker:
    """Keeps the fused order; `rerank_score` is the fused score."""

    name = "none"

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]:
        """Return hits unchanged (best first already)."""
        return _with_scores(hits, [float(h.get("score", 0.0)) for h in hits], top_n)


class MaxSimReranker:
    """Offline: best-matching sentence similarity (MiniLM) blended with the fused retrieval score.

    A chunk often holds one sentence that answers the query among unrelated ones; whole-chunk embeddings
    blur it, the best sentence does not. Blending keeps the hybrid (BM25) signal for exact terms.
    """

    name = "maxsim"

    def __init__(self, embed: Callable[[list[str]], np.ndarray], *, alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha!r} must be in [0, 1]")
        self.embed = embed
        self.alpha = alpha  # weight of the fused retrieval score

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]:
        """Score = alpha * fused (min-max) + (1 - alpha) * max sentence cosine (min-max)."""
        if not hits:
            return []
        best = best_sentence_similarity(self.embed, query, hits)
        fused = np.asarray([float(h.get("score", 0.0)) for h in hits])
        scores = self.alpha * _minmax(fused) + (1 - self.alpha) * _minmax(best)
        return _with_scores(hits, scores.tolist(), top_n)


class LtrReranker:
    """Offline learning to rank: a logistic model (tools/rerank_ltr.py) over the search's own signals
    (fused and per-source ranks and scores), the best sentence cosine, title match and freshness."""

    name = "ltr"

    def __init__(self, embed: Callable[[list[str]], np.ndarray], model: LogisticModel | None = None) -> None:
        self.embed = embed
        self.model = model or ltr.default_model()

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]:
        """Score = the model's log-odds that the hit is relevant."""
        if not hits:
            return []
        rows = ltr.features(query, hits, best_sentence_similarity(self.embed, query, hits))
        return _with_scores(hits, self.model.decision(rows).tolist(), top_n)


def best_sentence_similarity(
    embed: Callable[[list[str]], np.ndarray], query: str, hits: list[dict]
) -> np.ndarray:
    """Per hit, the cosine of its best-matching sentence (read with its heading) to the query."""
    sentences: list[str] = []
    owner: list[int] = []
    for i, hit in enumerate(hits):
        parts = split_sentences(hit.get("text", "")) or [hit.get("text", "")]
        heading = heading_of(hit)
        for sentence in parts:
            sentences.append(in_context(heading, sentence))
            owner.append(i)
    vectors = embed([query, *sentences])
    sims = vectors[1:] @ vectors[0]
    best = np.full(len(hits), -1.0)
    np.maximum.at(best, np.asarray(owner), sims)
    return best


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder loaded from a local directory (no download)."""

    name = "cross-encoder"

    def __init__(self, path: str) -> None:
        import os

        if not os.path.isdir(path):
            raise ProviderError("cross-encoder", f"model directory {path!r} does not exist")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        self.model: Any = CrossEncoder(path, device="cpu")

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]:
        """Score every (query, chunk) pair with the cross-encoder."""
        if not hits:
            return []
        scores = self.model.predict([(query, h.get("text", "")) for h in hits], show_progress_bar=False)
        return _with_scores(hits, [float(s) for s in np.atleast_1d(scores)], top_n)


class CohereReranker:
    """Cohere Rerank (`rerank-v3.5`) through the cohere SDK; needs COHERE_API_KEY."""

    name = "cohere"

    def __init__(
        self,
        api_key: str,
        model: str = "rerank-v3.5",
        timeout_s: float = 10.0,
        base_url: str | None = None,
        max_retries: int = 1,
    ) -> None:
        try:
            import cohere
        except ImportError as exc:  # pragma: no cover - cohere is a core dependency
            raise ProviderError(
                "cohere", "the 'cohere' package is not installed (pip install cohere)"
            ) from exc
        # base_url: a Cohere-compatible endpoint (proxy, test server); None = Cohere's production API
        self.client = cohere.ClientV2(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )
        self.model = model

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]:
        """Ask Cohere to order the hits; any API error becomes ProviderError."""
        if not hits:
            return []
        try:
            response = self.client.rerank(
                model=self.model,
                query=query,
                documents=[h.get("text", "") for h in hits],
                top_n=top_n or len(hits),
            )
        except Exception as exc:  # the SDK raises many error types; all mean "Cohere failed"
            raise ProviderError("cohere", f"rerank failed: {exc}") from exc
        return [{**hits[r.index], "rerank_score": float(r.relevance_score)} for r in response.results]
