"""Every search of a graph run goes through `search` here.

`search` is the single place that applies the caller's ACL (user_groups/clearance) and metadata filters,
so classify's probe, expansions, sub-questions and hops are all filtered the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ragroute.context import Context
from ragroute.runtime import caching, providers
from ragroute.runtime.scope import access_of, combined_filters


def search(ctx: Context, query: str, k: int, filters: dict[str, Any] | None = None) -> list[dict]:
    """Hybrid search with the run's ACL, filters and weights; hits as dicts."""
    index = providers.index(ctx)
    hits = caching.search(  # through the retrieval cache (keys hold filters, access and index version)
        index,
        query,
        k,
        filters=combined_filters(ctx, filters),
        access=access_of(ctx),
        weights=ctx.weights,
        candidate_k=max(k, ctx.candidate_k),
        enabled=ctx.cache,
    )
    return [h.to_dict() for h in hits]


async def asearch(ctx: Context, query: str, k: int, filters: dict[str, Any] | None = None) -> list[dict]:
    """`search` off the event loop (Chroma and BM25 are blocking)."""
    return await asyncio.to_thread(search, ctx, query, k, filters)
