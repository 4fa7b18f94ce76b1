"""retrieve: one hybrid search for one query (a Send branch), through ragroute.runtime.retrieval."""

from __future__ import annotations

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.runtime.retrieval import asearch
from ragroute.runtime.steps import note, timed
from ragroute.state import RetrieveTask


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
