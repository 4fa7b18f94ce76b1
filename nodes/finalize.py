"""finalize: shape the output (citations with quotes, total time, defaults for every output key)."""

from __future__ import annotations

import time

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.runtime import answer_ids, feedback
from ragroute.runtime.steps import note, timed
from ragroute.state import ABSTAIN_TEXT, Citation, RAGState
from ragroute.tools.extractive import content_terms
from ragroute.tools.faithfulness import answer_sentences, strip_citations
from ragroute.tools.sentences import split_sentences

QUOTE_CHARS = 300


def best_quote(source_text: str, claims: list[str]) -> str:
    """The source sentence sharing most words with the claims that cite it."""
    sentences = split_sentences(source_text) or [source_text]
    wanted = set().union(*(content_terms(c) for c in claims)) if claims else set()
    best = max(sentences, key=lambda s: len(content_terms(s) & wanted))
    return best[:QUOTE_CHARS]


def build_citations(answer: str, sources: list[dict], cited: list[int]) -> list[Citation]:
    """Citation records for the cited source numbers, in citation order."""
    by_n = {int(s["n"]): s for s in sources}
    claims_by_n: dict[int, list[str]] = {}
    for sentence, nums in answer_sentences(answer):
        for n in nums:
            claims_by_n.setdefault(n, []).append(strip_citations(sentence))
    out: list[Citation] = []
    for n in cited:
        src = by_n.get(n)
        if src is None:
            continue
        out.append(
            Citation(
                n=n,
                chunk_id=src["chunk_id"],
                doc_id=src.get("doc_id", ""),
                title=src.get("title", ""),
                section=src.get("section", ""),
                source=src.get("source", ""),
                quote=best_quote(src.get("text", ""), claims_by_n.get(n, [])),
            )
        )
    return out


@timed("finalize")
async def finalize(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Fill every output key; citations only for sources the final answer cites."""
    abstained = bool(state.get("abstained"))
    answer = ABSTAIN_TEXT if abstained else state.get("answer", ABSTAIN_TEXT)
    citations = (
        []
        if abstained
        else build_citations(answer, state.get("sources") or [], state.get("draft_citations") or [])
    )
    total = (time.time() - state["started_at"]) * 1000 if state.get("started_at") else 0.0
    question = state.get("question", "")
    # the turn a conversation thread keeps (condense reads it on the thread's next question)
    turn = [
        {"role": "user", "content": state.get("asked") or question, "standalone": question},
        {
            "role": "assistant",
            "content": answer,
            "doc_ids": list(dict.fromkeys(c["doc_id"] for c in citations)),
        },
    ]
    # the id a caller rates this answer by; delivered runs (ask/aask, the server) are recorded for feedback
    delivery = answer_ids.current()
    answer_id = (delivery.answer_id if delivery else None) or answer_ids.new_id()
    out = {"answer": answer, "citations": citations, "route": state.get("route"), "abstained": abstained}
    if delivery is not None:
        ctx = context_of(runtime)
        record = feedback.answer_record(ctx, answer_id, question, out, asked=state.get("asked"))
        record["trace_id"] = delivery.trace_id if delivery.answer_id else None
        await feedback.record(ctx, record)
    return {
        "answer_id": answer_id,
        "history": turn,
        "answer": answer,
        "citations": citations,
        "abstained": abstained,
        "faithfulness": float(state.get("faithfulness", 0.0)),
        "confidence": float(state.get("confidence", 0.0)),
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0},
        "timings": {"total": round(total, 3)},
        "trace": [note("finalize", citations=len(citations), abstained=abstained)],
    }
