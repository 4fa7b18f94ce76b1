"""rerank: fuse the per-query result lists, rerank the wide candidate set, cut to an adaptive k.

- Fusion: reciprocal rank fusion over the retrieval lists (original query, variants, sub-questions). For
  multi-hop, lists are interleaved round-robin instead, so every hop keeps its best evidence.
- Rerank: the configured reranker (Cohere / local); a failure or timeout keeps the fused order and is
  recorded as a degradation (raised when ctx.strict).
- Adaptive k: at most ctx.k_for(route) (3/10/20), fewer when the scores fall off a cliff.
"""

from __future__ import annotations

import asyncio

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.runtime import providers
from ragroute.runtime.scope import combined_filters
from ragroute.runtime.steps import degrade, note, timed
from ragroute.state import RAGState
from ragroute.tools.hybrid import fuse_hits
from ragroute.tools.titles import title_evidence
from ragroute.tools.versions import prefer_latest

CLIFF = 0.35  # drop in min-max-normalised score between neighbours that ends the context
MIN_K = 2


def interleave(lists: list[list[dict]]) -> list[dict]:
    """Round-robin merge (rank 1 of every list, then rank 2, ...), deduplicated by chunk id."""
    out: list[dict] = []
    seen: set[str] = set()
    depth = max((len(h) for h in lists), default=0)
    for i in range(depth):
        for hits in lists:
            if i < len(hits) and hits[i]["chunk_id"] not in seen:
                seen.add(hits[i]["chunk_id"])
                out.append({**hits[i], "score": 1.0 / (1 + i)})
    return out


def adaptive_k(scores: list[float], k_max: int, min_k: int = MIN_K, cliff: float = CLIFF) -> tuple[int, str]:
    """How many of the ranked hits to keep: k_max, or fewer where the scores fall off a cliff."""
    top = scores[: k_max + 1]
    if len(top) <= min_k:
        return len(top[:k_max]), "few candidates"
    hi, lo = max(top), min(top)
    span = hi - lo
    if span <= 1e-12:
        return min(k_max, len(scores)), "flat scores"
    norm = [(s - lo) / span for s in top]
    for i in range(1, min(k_max, len(norm))):
        if norm[i - 1] - norm[i] > cliff:
            kept = max(i, min(min_k, k_max))
            return kept, f"score cliff after rank {i} ({norm[i - 1]:.2f} -> {norm[i]:.2f}); kept {kept}"
    return min(k_max, len(scores)), "no cliff"


async def _rerank(ctx: Context, question: str, hits: list[dict]) -> tuple[list[dict], str, list[str]]:
    name = providers.resolve_reranker_name(ctx.reranker)
    if name == "none" or not hits:
        return hits, "none", []
    head, tail = hits[: ctx.rerank_depth], hits[ctx.rerank_depth :]
    try:
        model = providers.reranker(name)
        ranked = await providers.guarded(  # an open circuit skips a failing reranker at once
            providers.breaker_name("rerank", name, model),
            lambda: asyncio.wait_for(
                asyncio.to_thread(model.rerank, question, head, None), timeout=ctx.reranker_timeout_s
            ),
        )
        out = [{**h, "score": float(h["rerank_score"])} for h in ranked]
        floor = min((h["score"] for h in out), default=0.0)
        # candidates below the rerank depth keep their fused order, after every reranked one
        out += [{**h, "score": floor - 1e-6 * (i + 1)} for i, h in enumerate(tail)]
        return out, name, []
    except Exception as exc:  # provider error, timeout, missing model: fused order kept, recorded
        return hits, "none", [degrade(ctx, f"rerank ({name})", exc) + "; kept fused order"]


def _multihop(ctx: Context, lists: list[list[dict]], question: str) -> dict:
    """Title evidence first, then per-hop adaptive cuts round-robin, so every hop keeps its best evidence.

    Reranking against the whole question would bury hop-2 evidence, so the per-hop order is kept. Hits
    the question names by title, and hits title-linked to those, lead the context (see
    ragroute.tools.titles.title_evidence): in a titled corpus they are the entities the question is about."""
    share = max(MIN_K, ctx.k_multihop // max(1, len(lists)))
    cuts = [adaptive_k([float(h.get("score", 0.0)) for h in hits], share)[0] for hits in lists]
    rounds = interleave([hits[:k] for hits, k in zip(lists, cuts, strict=True)])
    evidence = [{**h, "score": 1.0, "evidence": "title"} for h in title_evidence(question, lists)]
    # the per-hop cuts decide how much context the hops need; the evidence decides what comes first
    merged = _unique([*evidence, *rounds])[: min(ctx.k_multihop, len(rounds))]
    everything = _unique([*merged, *interleave(lists)])
    why = f"{len(evidence)} title-linked hit(s) first, then per-hop cuts {cuts} of at most {share}"
    return {
        "retrieved": [h["chunk_id"] for h in everything],
        "ranked": everything,
        "documents": merged,
        "k": len(merged),
        "trace": [note("rerank", lists=len(lists), reranker="per-hop order", k=len(merged), k_reason=why)],
    }


def _unique(hits: list[dict]) -> list[dict]:
    """First occurrence of every chunk id, order kept."""
    first: dict[str, dict] = {}
    for hit in hits:
        first.setdefault(hit["chunk_id"], hit)
    return list(first.values())


@timed("rerank")
async def rerank(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Fuse all retrievals, rerank the candidates and keep an adaptive number of them."""
    ctx = context_of(runtime)
    route = state.get("route", "simple")
    lists = [r["hits"] for r in state.get("retrievals") or [] if r.get("hits")]
    flt = combined_filters(ctx, state.get("filters"))
    if ctx.prefer_latest_version:  # older versions of a document family give way to the newest one
        lists = [prefer_latest(hits, filters=flt, question=state["question"]) for hits in lists]
    if route == "multihop":
        return _multihop(ctx, lists, state["question"])
    fused = fuse_hits(lists, rrf_k=ctx.rrf_k) if len(lists) > 1 else (lists[0] if lists else [])
    if ctx.prefer_latest_version and len(lists) > 1:  # versions met in different lists
        fused = prefer_latest(fused, filters=flt, question=state["question"])
    fused = fused[: max(ctx.candidate_k, ctx.k_for(route))]
    ranked, used, degradations = await _rerank(ctx, state["question"], fused)
    k, why = adaptive_k([float(h.get("score", 0.0)) for h in ranked], ctx.k_for(route))
    return {
        "degradations": degradations,
        "retrieved": [h["chunk_id"] for h in fused],
        "ranked": ranked,
        "documents": ranked[:k],
        "k": k,
        "trace": [note("rerank", lists=len(lists), candidates=len(fused), reranker=used, k=k, k_reason=why)],
    }
