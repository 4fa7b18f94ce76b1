"""classify: pick a route (simple | expand | multihop) from the question and a quick probe search.

Offline a learned router decides (tools/router_model.py): a logistic regression over the question's
embedding (the query vector the probe search already computed) and general structural features (length,
entity spans, comparison and bridge shapes, the question word, the probe's score shape and dense/BM25
agreement), fitted on silver labels (the cheapest route whose context held the gold evidence) and
applied cost-aware. With an LLM configured it asks the model (JSON output), falling back to the router.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Overwrite
from ragroute.context import Context, context_of
from ragroute.prompts.classify import CLASSIFY_PROMPT, RouteReply
from ragroute.runtime import providers
from ragroute.runtime.retrieval import asearch
from ragroute.runtime.steps import degrade, llm_json, note, timed
from ragroute.state import ROUTES, RAGState, add_numbers
from ragroute.tools.errors import InputError
from ragroute.tools.pii import redact_query
from ragroute.tools.router_model import PROBE_K, RouterModel, features, load_router

__all__ = ["PROBE_K", "classify", "decide", "features", "query_vector"]


def query_vector(ctx: Context, question: str, model: RouterModel) -> list[float] | None:
    """The question's vector from the index's query-vector cache (filled by the probe's dense search), or
    None when the model uses no embedding or the index embeds with another model than it was fitted on."""
    index = providers.index(ctx)
    get = getattr(index, "query_vector", None)
    name = getattr(getattr(index, "embedder", None), "name", None)
    if get is None or not model.embedding_model or name != model.embedding_model:
        return None
    return list(get(question))


def decide(
    feats: dict[str, Any], vector: list[float] | None = None, model: RouterModel | None = None
) -> tuple[str, str]:
    """Route and a human-readable reason from the learned router's probabilities."""
    model = model or load_router()
    route, probs = model.route(feats, vector)
    shown = " / ".join(f"{probs[r]:.2f}" for r in ROUTES)
    why = [f"learned router: P(simple/expand/multihop) = {shown}"]
    if feats.get("comparison_entities"):
        why.append(f"compares {' / '.join(feats['comparison_entities'])}")
    if vector is None and model.embedding_model:
        why.append("no question embedding (structural features only)")
    return route, "; ".join(why)


async def _llm_route(ctx: Context, question: str) -> tuple[str, str, dict[str, float]]:
    reply, usage = await llm_json(ctx, CLASSIFY_PROMPT.format(question=question), RouteReply)
    if reply.route not in ROUTES:
        raise ValueError(f"LLM returned route {reply.route!r}; options: {list(ROUTES)}")
    return reply.route, f"llm: {reply.reason}".strip(), usage


@timed("classify")
async def classify(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Probe-search the question, compute features and choose a route (forced by ctx.route if set)."""
    ctx = context_of(runtime)
    question = (state.get("question") or "").strip()
    if not question:
        raise InputError("question is empty; ask something")
    redacted: dict[str, str] = {}
    if ctx.redact_query_pii:  # server runs arrive here with the raw question (ask() redacts before)
        question = redact_query(question)
        redacted = {"question": question}  # every later node reads the redacted question
    started = time.time()
    probe = await asearch(ctx, question, PROBE_K, state.get("filters"))
    feats = features(question, probe)
    model = load_router(ctx.router_model)
    vector = await asyncio.to_thread(query_vector, ctx, question, model)
    route, reason = decide(feats, vector, model)
    degradations: list[str] = []
    usage: dict[str, float] = {}
    if ctx.route != "auto":
        route, reason = ctx.route, f"forced by context (features said {route}: {reason})"
    elif ctx.llm:
        try:
            route, reason, usage = await _llm_route(ctx, question)
        except Exception as exc:  # bad JSON or a failed model call: recorded, learned route kept
            degradations = [degrade(ctx, "classify", exc) + "; used the learned router"]
    # classify starts every run: accumulated channels are reset (a checkpointed thread may hold an
    # earlier question's retrievals, timings and trace), keeping what this run's condense step wrote
    pre = state.get("condensed") or {} if state.get("history") else {}
    return {
        "retrievals": Overwrite([]),
        "candidates": Overwrite([]),
        "timings": Overwrite(dict(pre.get("timings") or {})),
        "usage": Overwrite(add_numbers(pre.get("usage"), usage)),
        "degradations": Overwrite([*(pre.get("degradations") or []), *degradations]),
        "started_at": started,
        "attempt": 0,
        "route": route,
        "route_reason": reason,
        "features": feats,
        "probe": probe,
        "trace": Overwrite(
            [*(pre.get("trace") or []), note("classify", route=route, reason=reason, features=feats)]
        ),
        **redacted,
    }
