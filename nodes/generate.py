"""generate: a cited answer from the numbered sources.

With ctx.llm: any LangChain chat model (prompts/generate.py); answer tokens stream through LangGraph's
"messages" stream mode. Without: the deterministic extractive generator (tools/extractive.py). Either
way citations are then repaired (unknown [n] removed, uncited claims cited or dropped), and notes on
possibly outdated sources (version / last_updated) are appended.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.prompts.generate import (
    GENERATE_PROMPT,
    GENERATE_STRICT_SUFFIX,
    GENERATE_SYSTEM,
)
from ragroute.runtime import providers
from ragroute.runtime.steps import call_llm, degrade, format_sources, note, timed
from ragroute.state import ABSTAIN_TEXT, RAGState
from ragroute.tools.extractive import GENERATOR_NAME, generate_extractive
from ragroute.tools.faithfulness import repair_citations
from ragroute.tools.freshness import staleness_notes

MAX_SENTENCES = 5
PART_MIN_SCORE = 0.55  # multi-hop: a sub-question's best sentence is added when it scores this well


def is_abstention(text: str) -> bool:
    """Whether the model chose to abstain (exact phrase, tolerant of quotes and trailing period)."""
    return ABSTAIN_TEXT.rstrip(".").lower() in text.strip().strip("\"'").lower()


async def _llm_answer(ctx: Context, question: str, sources: list[dict], strict: bool) -> tuple[str, dict]:
    system = GENERATE_SYSTEM.format(abstain=ABSTAIN_TEXT, max_sentences=MAX_SENTENCES)
    if strict:
        system += GENERATE_STRICT_SUFFIX
    return await call_llm(
        ctx, GENERATE_PROMPT.format(sources=format_sources(sources), question=question), system=system
    )


def _extractive(
    question: str, sources: list[dict], strict: bool, subquestions: list[str], threshold: float | None
) -> tuple[str, bool, float | None, dict[str, float]]:
    """The extractive answer, whether it abstained, the answerability model's probability and features."""
    embed = providers.embedder()
    result = generate_extractive(
        question, sources, embed, abstain_text=ABSTAIN_TEXT, min_answerability=threshold, strict=strict
    )
    if result.abstained or not subquestions:
        return result.text, result.abstained, result.answerability, result.features
    # multi-hop synthesis: add the best sentence for each sub-question the answer does not cover yet
    extra = []
    for sub in subquestions:
        part = generate_extractive(  # the answer already passed the answerability check: score only
            sub,
            sources,
            embed,
            abstain_text="",
            min_score=PART_MIN_SCORE,
            check_answerable=False,
            max_sentences=1,
        )
        if part.text and part.text not in result.text and part.text not in extra:
            extra.append(part.text)
    return " ".join([result.text, *extra]), False, result.answerability, result.features


@timed("generate")
async def generate(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Write the answer with [n] citations, repair them, note outdated sources."""
    ctx = context_of(runtime)
    question = state["question"]
    sources = state.get("sources") or []
    strict = int(state.get("attempt") or 0) > 0
    update: dict[str, Any] = {"degradations": []}
    answer_why: dict[str, float] = {}  # what the answerability model read (the trace explains an abstention)
    generator = GENERATOR_NAME
    if not sources:
        text, abstained = ABSTAIN_TEXT, True
    else:
        text, abstained = "", False
        if ctx.llm:
            try:
                text, update["usage"] = await _llm_answer(ctx, question, sources, strict)
                generator = ctx.llm
                abstained = is_abstention(text)
            except Exception as exc:  # model failure: recorded, extractive answer instead
                update["degradations"].append(degrade(ctx, "generate", exc) + "; used extractive generator")
        if generator == GENERATOR_NAME:
            subs = (state.get("subquestions") or []) if state.get("route") == "multihop" else []
            text, abstained, answerable, features = await asyncio.to_thread(
                _extractive, question, sources, strict, subs, ctx.answer_threshold
            )
            if answerable is not None:  # the model's P(answerable) is the answer's confidence
                update["confidence"] = round(answerable, 4)
                answer_why = {k: round(v, 4) for k, v in features.items()}
    cited: list[int] = []
    repairs: list[str] = []
    if not abstained:
        text, cited, repairs = await asyncio.to_thread(repair_citations, text, sources, providers.embedder())
        if not cited:
            text, abstained = ABSTAIN_TEXT, True
            repairs.append("no supported, cited sentence left; abstained")
        else:
            notes = staleness_notes(sources, cited, ctx.stale_after_days, others=state.get("ranked"))
            text = " ".join([text, *notes])
    if abstained:
        text, cited = ABSTAIN_TEXT, []
    return {
        **update,
        "answer": text,
        "draft_citations": cited,
        "generator": generator,
        "abstained": abstained,
        "trace": [
            note(
                "generate",
                generator=generator,
                strict=strict,
                cited=cited,
                repairs=repairs,
                answerability=update.get("confidence"),
                answer_features=answer_why,
            )
        ],
    }
