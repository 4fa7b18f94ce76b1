"""decompose: split a multi-hop question into sub-questions retrieved in parallel (Send).

Offline rules:
- comparison ("..., A or B?", "both A and B"): one sub-question per compared item;
- bridge ("the hotel in which X's album was recorded"): hop 1 is the question itself (classify's probe
  search, already ACL-filtered); the bridging entity is a name in the best-matching hop-1 sentence that the
  question does not mention; hop 2 asks about that entity with the question's unmatched terms.
With an LLM configured, the model writes the sub-questions (JSON bound to a schema); the rules are the
fallback.
The text rules themselves live in ragroute.tools.entities (names) and ragroute.tools.titles (title links).
"""

from __future__ import annotations

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.prompts.decompose import DECOMPOSE_PROMPT, SubquestionsReply
from ragroute.runtime.steps import llm_strings, note, timed
from ragroute.state import RAGState, RetrieveTask
from ragroute.tools.entities import MAX_BRIDGES, bridge_votes, comparison_entities
from ragroute.tools.extractive import content_terms


def _ordered_terms(text: str, exclude: set[str]) -> list[str]:
    seen: list[str] = []
    for word in text.replace("?", " ").split():
        w = word.strip(".,'\"()").lower()
        if w in content_terms(word) and w not in exclude and w not in seen:
            seen.append(w)
    return seen


def comparison_subquestions(question: str, items: list[str]) -> list[str]:
    """One query per compared item: the item plus the question's other content words."""
    item_terms = set().union(*(content_terms(i) for i in items))
    rest = " ".join(_ordered_terms(question, item_terms))
    return [f"{item} {rest}".strip() for item in items]


def offline_subquestions(question: str, probe: list[dict], limit: int) -> tuple[list[str], str]:
    """Sub-questions by rule and the rule's name ("comparison" | "bridge")."""
    items = comparison_entities(question)
    if len(items) >= 2:
        subs = list(dict.fromkeys(comparison_subquestions(question, items)))  # same-named items: one search
        return subs[:limit], "comparison"
    votes = bridge_votes(question, probe)
    # a name hop 1 already retrieved as a document needs no second search (rerank links it by title);
    # hop 2 is spent on the names hop 1 did not find
    fresh = [name for name, retrieved in votes if not retrieved]
    bridges = (fresh or [name for name, _ in votes])[:MAX_BRIDGES]
    top_text = " ".join(h.get("text", "") for h in probe[:1]).lower()
    residual = [t for t in _ordered_terms(question, set()) if t not in top_text]
    return [f"{b} {' '.join(residual)}".strip() for b in bridges][:limit], "bridge"


@timed("decompose")
async def decompose(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Plan sub-question retrievals (hop 1 reuses the classify probe) for parallel Send branches."""
    ctx = context_of(runtime)
    question = state["question"]
    probe = state.get("probe") or []
    prompt = DECOMPOSE_PROMPT.format(question=question, n=ctx.max_subquestions)
    subs, update = await llm_strings(
        ctx, "decompose", prompt, ctx.max_subquestions, "used rule-based sub-questions", SubquestionsReply
    )
    method = "llm"
    if not subs:
        subs, method = offline_subquestions(question, probe, ctx.max_subquestions)
    filters = state.get("filters")
    purpose = "hop2" if method == "bridge" else "subquestion"
    queries: list[RetrieveTask] = [{"query": s, "purpose": purpose, "filters": filters} for s in subs]
    if method != "bridge":
        queries.insert(0, {"query": question, "purpose": "original", "filters": filters})
    return {
        **update,
        "queries": queries,
        "subquestions": subs,
        "retrievals": [{"query": question, "purpose": "hop1", "hits": probe}] if method == "bridge" else [],
        "candidates": probe if method == "bridge" else [],
        "trace": [note("decompose", method=method, subquestions=subs)],
    }
