"""classify: pick a route (simple | expand | multihop) from query features and a quick probe search.

Offline it is a small weighted model over features a retrieval engineer would look at: length, named
entity spans, comparison cues ("A or B", "both", "older"), bridge cues ("the film that...", "the X of
the Y"), the question word, and how decisive the probe retrieval is (score spread, whether dense and BM25
agree on the top hit). With an LLM configured it asks the model (JSON output), falling back to features.
"""

from __future__ import annotations

import re
import time
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Overwrite
from ragroute.context import Context, context_of
from ragroute.prompts.classify import CLASSIFY_PROMPT, RouteReply
from ragroute.runtime.retrieval import asearch
from ragroute.runtime.steps import degrade, llm_json, note, timed
from ragroute.state import ROUTES, RAGState, add_numbers
from ragroute.tools.entities import (
    COMMON_CUE,
    COMPARISON_CUE,
    QUESTION_WORDS,
    comparison_entities,
    entity_spans,
)
from ragroute.tools.errors import InputError
from ragroute.tools.extractive import content_terms
from ragroute.tools.pii import redact_query

PROBE_K = 10
_BRIDGE = re.compile(
    r"\b(?:[Tt]he|[Aa]n?|[Tt]his|[Tt]hat|[Ww]hich|[Ww]hat)\s+(?:[\w\-]+\s+){0,3}?"
    r"(?:that|who|which|whose|where|whom)\b"
    r"|\b(?:in|of|by|for|from|at|with)\s+which\b"
    # "the chief executive officer of Nerdist", "this singer of A Rather Blustery Day"
    r"|\b(?:[Tt]he|[Tt]his|[Tt]hat|[Aa]n?)\s+(?:[\w\-]+\s+){1,3}?(?:of|for|by|in)\s+(?:the\s+)?[A-Z]"
    # reduced relative clause: "the fiction written by X", "the band formed in", "a game designed by"
    r"|\b(?:[Tt]he|[Tt]his|[Tt]hat|[Aa]n?)\s+(?:[\w\-]+\s+){0,3}?[a-z]{2,}(?:ed|en)\s+"
    r"(?:by|in|at|for|from|with|on|as)\s"
    # "a film starring Nicolas Cage"
    r"|\b(?:[Tt]he|[Aa]n?|[Tt]his|[Tt]hat)\s+(?:[\w\-]+\s+){0,2}?[a-z]{3,}ing\s+[A-Z]"
    r"|\b[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)*'s\s+(?:\d+\s+)?[a-z]",
)
_EMBEDDED_WH = re.compile(
    r"(?<!^)(?<=\s)(what|which|who|whom|whose|when|where|how many|how much)\b(?!.*\bwhat\b)", re.I
)
_VAGUE = re.compile(r"\b(it|this|that thing|stuff|something|things|issue|problem|help|info)\b", re.I)


def features(question: str, probe: list[dict]) -> dict[str, Any]:
    """Numeric/boolean features of the question and of the probe retrieval."""
    words = question.split()
    ents = entity_spans(question)
    scores = [float(h.get("score", 0.0)) for h in probe]
    top = probe[0] if probe else {}
    ranks = top.get("ranks") or {}
    agree = bool(ranks) and all(r is not None and r <= 2 for r in ranks.values())
    spread = (scores[0] - scores[min(4, len(scores) - 1)]) / scores[0] if scores and scores[0] > 0 else 0.0
    first = words[0].lower() if words else ""
    return {
        "n_words": len(words),
        "n_terms": len(content_terms(question)),
        "n_entities": len(ents),
        "entities": ents[:6],
        "comparison_entities": comparison_entities(question),
        "comparison_cue": bool(COMPARISON_CUE.search(question)),
        "bridge_cue": bool(_BRIDGE.search(question)),
        "common_cue": bool(COMMON_CUE.search(question)),
        "embedded_wh": bool(_EMBEDDED_WH.search(question)),
        "vague_cue": bool(_VAGUE.search(question)),
        "question_word": first if first in QUESTION_WORDS else "",
        "is_question": question.rstrip().endswith("?") or first in QUESTION_WORDS,
        "probe_hits": len(probe),
        "probe_spread": round(spread, 4),
        "probe_agree": agree,
    }


def decide(f: dict[str, Any]) -> tuple[str, str]:
    """Route and a human-readable reason from the features (a hand-weighted linear model)."""
    multi, why_multi = 0.0, []
    if f["comparison_entities"]:
        multi += 2.0
        why_multi.append(f"compares {' / '.join(f['comparison_entities'])}")
    elif f["common_cue"] and f["n_entities"] >= 2:
        multi += 2.0
        why_multi.append("asks what several entities share")
    elif f["comparison_cue"] and f["n_entities"] >= 2:
        multi += 1.0
        why_multi.append("comparison cue with several entities")
    if f["bridge_cue"]:
        multi += 1.0
        why_multi.append("bridge phrase (the X that/of ...)")
        if f.get("is_question") and f["n_entities"] >= 1:
            # a question that describes what it asks for through a named entity ("the singer of X",
            # "the band formed in Y"): the description has to be resolved first
            multi += 0.5
            why_multi.append("asks about something described through a named entity")
    if f["embedded_wh"]:
        multi += 0.5
        why_multi.append("question word inside the sentence")
    if f["n_entities"] >= 2 or (f["n_entities"] >= 1 and f["n_words"] >= 12):
        multi += 0.5
        why_multi.append(f"{f['n_entities']} entity span(s) in {f['n_words']} words")
    if f["n_words"] >= 14 and (f["question_word"] or f["embedded_wh"]):
        multi += 0.5
        why_multi.append(f"long question ({f['n_words']} words)")
    expand, why_expand = 0.0, []
    if f["n_terms"] <= 3:
        expand += 1.0
        why_expand.append(f"only {f['n_terms']} content terms")
    if f["vague_cue"]:
        expand += 0.5
        why_expand.append("vague wording")
    if f["probe_hits"] and not f["probe_agree"]:
        expand += 0.5
        why_expand.append("dense and keyword search disagree on the top hit")
    if f["probe_hits"] and f["probe_spread"] < 0.05:
        expand += 0.5
        why_expand.append("flat probe scores")
    if f["probe_hits"] == 0:
        expand += 1.0
        why_expand.append("probe found nothing")
    if multi >= 2.0:
        return "multihop", "; ".join(why_multi)
    if expand >= 1.5:
        return "expand", "; ".join(why_expand)
    return "simple", "; ".join(["specific single lookup", *why_multi, *why_expand][:3])


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
    route, reason = decide(feats)
    degradations: list[str] = []
    usage: dict[str, float] = {}
    if ctx.route != "auto":
        route, reason = ctx.route, f"forced by context (features said {route}: {reason})"
    elif ctx.llm:
        try:
            route, reason, usage = await _llm_route(ctx, question)
        except Exception as exc:  # bad JSON or a failed model call: recorded, feature route kept
            degradations = [degrade(ctx, "classify", exc) + "; used feature classifier"]
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
