"""prune: freshness decay, then fit the context into the token budget.

Order of work: decay scores by age (off unless ctx.freshness_half_life_days), drop near-duplicate chunks,
keep the best chunks that fit the tiktoken budget, expand kept chunks to their parent section while the
budget allows (chunks sharing a parent merge into one source), then number the sources for the model,
best first. On a retry after an unfaithful answer, the context grows (more chunks, 1.5x budget).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.runtime import providers
from ragroute.runtime.steps import degrade, note, timed
from ragroute.state import RAGState
from ragroute.tools.freshness import apply_decay
from ragroute.tools.injection import screen
from ragroute.tools.tokens import count_tokens

DUPLICATE_JACCARD = 0.8
RETRY_EXTRA_DOCS = 3
RETRY_BUDGET_FACTOR = 1.5


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    """Word n-grams of the lower-cased text (near-duplicate detection)."""
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def drop_duplicates(hits: list[dict], threshold: float = DUPLICATE_JACCARD) -> tuple[list[dict], int]:
    """Hits minus those whose 3-gram Jaccard with a better hit exceeds threshold; and how many went."""
    kept: list[tuple[dict, set]] = []
    for hit in hits:
        sh = shingles(hit.get("text", ""))
        if any(len(sh & other) / max(1, len(sh | other)) > threshold for _, other in kept):
            continue
        kept.append((hit, sh))
    return [h for h, _ in kept], len(hits) - len(kept)


def fit_budget(hits: list[dict], budget: int) -> tuple[list[dict], int, int]:
    """Best-first hits that fit the budget: (kept with 'tokens', tokens kept, tokens dropped)."""
    kept, used, dropped = [], 0, 0
    for hit in hits:
        tokens = count_tokens(hit.get("text", ""))
        if used + tokens <= budget:
            kept.append({**hit, "tokens": tokens})
            used += tokens
        else:
            dropped += tokens
    return kept, used, dropped


def expand_parents(hits: list[dict], budget: int, get_parent: Any) -> tuple[list[dict], int, int]:
    """Swap chunks for their parent section while the total stays within budget; merge shared parents."""
    used = sum(h["tokens"] for h in hits)
    out: list[dict] = []
    parents_seen: dict[str, dict] = {}
    expanded = 0
    for hit in hits:
        pid = hit.get("parent_id")
        if pid is not None and pid in parents_seen:  # a sibling already brought in the whole section
            used -= hit["tokens"]
            parents_seen[pid].setdefault("merged", []).append(hit["chunk_id"])
            continue
        parent = get_parent(pid) if pid else None
        text = getattr(parent, "text", "") if parent is not None else ""
        if text and len(text) > len(hit.get("text", "")):
            extra = count_tokens(text) - hit["tokens"]
            if used + extra <= budget:
                hit = {**hit, "text": text, "tokens": hit["tokens"] + extra, "expanded": True}
                used += extra
                expanded += 1
                parents_seen[str(pid)] = hit
        out.append(hit)
    return out, used, expanded


@timed("prune")
async def prune(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Decay, dedupe, fit and expand the ranked documents into numbered sources."""
    ctx = context_of(runtime)
    attempt = int(state.get("attempt") or 0)
    docs = list(state.get("documents") or [])
    budget = ctx.token_budget
    if attempt:
        ranked = state.get("ranked") or []
        docs = ranked[: len(docs) + RETRY_EXTRA_DOCS * attempt]
        budget = int(budget * RETRY_BUDGET_FACTOR**attempt)
    docs = apply_decay(docs, ctx.freshness_half_life_days)
    docs, n_dupes = drop_duplicates(docs)
    kept, used, dropped = fit_budget(docs, budget)
    over_budget = len(docs) - len(kept)
    degradations: list[str] = []
    expanded = 0
    try:
        index = providers.index(ctx)
        kept, used, expanded = await asyncio.to_thread(expand_parents, kept, budget, index.get_parent)
    except Exception as exc:  # parent lookup failed: the child chunks are still a valid context
        degradations.append(degrade(ctx, "prune.parents", exc) + "; kept child chunks")
    sources = []
    removed = 0
    for n, hit in enumerate(kept, start=1):
        meta = hit.get("metadata") or {}
        # documents are data: sentences addressed to the model ("ignore previous instructions") go
        text, title = screen(hit.get("text", "")), screen(str(meta.get("title", hit.get("title", ""))))
        removed += len(text.removed) + len(title.removed)
        sources.append(
            {
                "n": n,
                "chunk_id": hit["chunk_id"],
                "doc_id": hit.get("doc_id", meta.get("doc_id", "")),
                "title": title.text,
                "section": str(meta.get("section", hit.get("section", ""))),
                "source": str(meta.get("source", "")),
                "text": text.text,
                "metadata": meta,
                "score": hit.get("score", 0.0),
                "expanded": bool(hit.get("expanded")),
            }
        )
    stats = {
        "budget": budget,
        "tokens_kept": used,
        "tokens_dropped": dropped,
        "duplicates_dropped": n_dupes,
        "chunks_dropped_for_budget": over_budget,
        "parents_expanded": expanded,
        "instructions_removed": removed,
    }
    return {
        "sources": sources,
        "contexts": [s["chunk_id"] for s in sources],
        "prune_stats": stats,
        "degradations": degradations,
        "trace": [note("prune", attempt=attempt, **stats)],
    }
