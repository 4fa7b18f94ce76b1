"""expand: query variants for vague questions (LLM paraphrases, or offline pseudo-relevance feedback).

Offline PRF: the top probe hits are assumed relevant; their most distinctive terms (frequent in those
hits, absent from the question) are appended to the question, and a keyword-only variant is added.
"""

from __future__ import annotations

import math
from collections import Counter

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.prompts.expand import EXPAND_PROMPT, VariantsReply
from ragroute.runtime.steps import llm_strings, note, timed
from ragroute.state import RAGState, RetrieveTask
from ragroute.tools.extractive import content_terms

PRF_DOCS = 3
PRF_TERMS = 6


def prf_terms(
    question: str, probe: list[dict], n_docs: int = PRF_DOCS, n_terms: int = PRF_TERMS
) -> list[str]:
    """Terms frequent in the top hits but not in the question, weighted by how many top hits share them."""
    asked = content_terms(question)
    top = probe[:n_docs]
    df: Counter[str] = Counter()
    tf: Counter[str] = Counter()
    for hit in top:
        words = [
            w for w in content_terms(hit.get("text", "")) if w not in asked and not w.isdigit() and len(w) > 2
        ]
        df.update(set(words))
        tf.update(words)
    ranked = sorted(df, key=lambda w: (-(df[w] * math.log1p(tf[w])), w))
    return ranked[:n_terms]


def offline_variants(question: str, probe: list[dict], n: int) -> list[str]:
    """PRF-expanded question, a keyword-only form, and the question with the top hit's title."""
    terms = prf_terms(question, probe)
    out = []
    if terms:
        out.append(f"{question} {' '.join(terms)}")
    keywords = " ".join(sorted(content_terms(question)))
    if keywords and keywords.lower() != question.lower():
        out.append(keywords)
    title = str((probe[0].get("metadata") or {}).get("title", "")) if probe else ""
    if title and title.lower() not in question.lower():
        out.append(f"{title} {question}")
    return list(dict.fromkeys(out))[:n]


@timed("expand")
async def expand(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Plan the original query plus variants; routing fans them out to parallel retrieve branches."""
    ctx = context_of(runtime)
    question = state["question"]
    prompt = EXPAND_PROMPT.format(question=question, n=ctx.num_variants)
    variants, update = await llm_strings(
        ctx, "expand", prompt, ctx.num_variants, "used PRF variants", VariantsReply
    )
    method = "llm" if variants else "prf"
    if not variants:
        variants = offline_variants(question, state.get("probe") or [], ctx.num_variants)
    filters = state.get("filters")
    queries: list[RetrieveTask] = [{"query": question, "purpose": "original", "filters": filters}]
    queries += [{"query": v, "purpose": "variant", "filters": filters} for v in variants if v != question]
    return {**update, "queries": queries, "trace": [note("expand", method=method, variants=variants)]}
