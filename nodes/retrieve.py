"""retrieve: one hybrid search for one query (a Send branch); every search goes through `search` here.

`search` is the single place that applies the caller's ACL (user_groups/clearance) and metadata filters,
so classify's probe, expansions, sub-questions and hops are all filtered the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.runtime import caching, providers
from ragroute.runtime.steps import note, timed
from ragroute.state import RetrieveTask
from ragroute.tools.types import AccessScope


def combined_filters(ctx: Context, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's filter AND the per-question filter (either may be None)."""
    parts = [f for f in (ctx.filters, extra) if f]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def access_of(ctx: Context) -> AccessScope | None:
    """The caller's access scope; None (unrestricted) when neither groups nor clearance is set."""
    if ctx.user_groups is None and ctx.clearance is None:
        return None
    return AccessScope(
        groups=list(ctx.user_groups or []), clearance=ctx.clearance if ctx.clearance is not None else 0
    )


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


@timed("retrieve")
async def retrieve(state: RetrieveTask, runtime: Runtime[Context]) -> dict:
    """Retrieve candidate_k hits for one query and add them to the shared candidate pool."""
    ctx = context_of(runtime)
    hits = await asearch(ctx, state["query"], ctx.candidate_k, state.get("filters"))
    return {
        "retrievals": [{"query": state["query"], "purpose": state.get("purpose", "original"), "hits": hits}],
        "candidates": hits,
        "trace": [note("retrieve", query=state["query"], purpose=state.get("purpose"), hits=len(hits))],
    }
