"""verify: sentence-level faithfulness of the answer against the sources each sentence cites.

LLM-as-judge when ctx.llm is set (schema-bound JSON, one score per sentence); offline,
tools/faithfulness.py (MiniLM similarity + token coverage, and a claim naming a command, number or name
its sources lack is unsupported). A sentence below ctx.faithfulness_threshold makes the answer unfaithful:
the graph retries once (more context, stricter generation), then abstains.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.prompts.verify import VERIFY_PROMPT, scores_reply
from ragroute.runtime import providers
from ragroute.runtime.steps import degrade, format_sources, llm_json, note, timed
from ragroute.state import ABSTAIN_TEXT, RAGState
from ragroute.tools.extractive import GENERATOR_NAME, score_sentences
from ragroute.tools.faithfulness import score_answer

UNRELATED_SIMILARITY = 0.5  # below this MiniLM cosine, with no shared word, a claim is not in its sources


def _claims(answer: str, sources: list[dict]) -> list[dict]:
    """Per-sentence support of the answer (notes about outdated sources are not claims)."""
    body = answer.split(" Note: source [")[0]
    return [
        {
            "sentence": s.sentence,
            "cited": s.cited,
            "support": round(s.support, 4),
            "coverage": round(s.coverage, 4),
            "similarity": round(s.similarity, 4),
            "ungrounded": s.ungrounded,
        }
        for s in score_answer(body, sources, providers.embedder())
    ]


async def _llm_judge(ctx: Context, claims: list[dict], sources: list[dict]) -> tuple[list[dict], dict]:
    listing = "\n".join(f"{i + 1}. {c['sentence']} (cites {c['cited']})" for i, c in enumerate(claims))
    prompt = VERIFY_PROMPT.format(sources=format_sources(sources), sentences=listing)
    reply, usage = await llm_json(ctx, prompt, scores_reply(len(claims)))
    scores = reply.scores
    if len(scores) != len(claims):
        raise ValueError(f"judge returned {len(scores)} scores for {len(claims)} sentences")
    return [
        {**c, "support": _judged(s, c), "judge_score": round(s, 4), "judge": "llm"}
        for c, s in zip(claims, scores, strict=True)
    ], usage


def _judged(score: float, claim: dict) -> float:
    """The judge's score, capped by the offline score when the claim states a command, number or name its
    sources lack (or contradicts their negation), or when they hold no word of it and nothing close: a
    small judge, or one that obeys text injected into a document, must not certify an invented claim."""
    score = max(0.0, min(1.0, score))
    if claim.get("ungrounded"):
        return min(score, claim["support"])
    if claim.get("coverage", 1.0) > 0 or claim.get("similarity", 1.0) >= UNRELATED_SIMILARITY:
        return score
    return min(score, claim["support"])


def question_support(question: str, sources: list[dict]) -> float:
    """How well the best source sentence matches the question (0..1), a retrieval-side confidence."""
    scored = score_sentences(question, sources, providers.embedder())
    return max(0.0, min(1.0, scored[0].score)) if scored else 0.0


@timed("verify")
async def verify(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Score faithfulness; pass, ask for a retry (attempt + 1), or abstain when retries are used up."""
    ctx = context_of(runtime)
    sources = state.get("sources") or []
    attempt = int(state.get("attempt") or 0)
    if state.get("abstained"):
        return {
            "faithfulness": 1.0,
            "confidence": 0.0,
            "support": [],
            "trace": [note("verify", verdict="abstained", attempt=attempt)],
        }
    update: dict[str, Any] = {"degradations": []}
    extra: dict[str, Any]
    claims = await asyncio.to_thread(_claims, state.get("answer", ""), sources)
    judge = "offline"
    if ctx.llm and claims:
        try:
            claims, update["usage"] = await _llm_judge(ctx, claims, sources)
            judge = "llm"
        except Exception as exc:  # judge failed or replied badly: offline scores kept, recorded
            update["degradations"].append(degrade(ctx, "verify", exc) + "; used offline faithfulness")
    score = sum(c["support"] for c in claims) / len(claims) if claims else 0.0
    weak = [c for c in claims if c["support"] < ctx.faithfulness_threshold]
    faithful = bool(claims) and not weak
    if faithful and state.get("generator") == GENERATOR_NAME and state.get("confidence") is not None:
        verdict, extra = "faithful", {}  # generate's P(answerable) (tools/answerability.py) is the confidence
    elif faithful:
        retrieval = await asyncio.to_thread(question_support, state["question"], sources)
        verdict, extra = "faithful", {"confidence": round(0.5 * score + 0.5 * retrieval, 4)}
    elif attempt < ctx.max_retries:
        verdict, extra = "retry", {"attempt": attempt + 1}
    else:
        verdict = "abstain"
        extra = {"answer": ABSTAIN_TEXT, "abstained": True, "draft_citations": [], "confidence": 0.0}
    return {
        **update,
        **extra,
        "faithfulness": round(score, 4),
        "support": claims,
        "trace": [
            note(
                "verify", verdict=verdict, judge=judge, score=round(score, 4), weak=len(weak), attempt=attempt
            )
        ],
    }
