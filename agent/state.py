"""Graph state: input/output schemas and the working state with reducers for parallel branches.

Hits travel through the state as plain dicts (`SearchHit.to_dict()`), so the state stays JSON-ready for
Studio, langserve and checkpointers. Keys written by parallel `Send` branches (retrieve for each query
variant or sub-question) carry reducers that merge and deduplicate by chunk id.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired

from typing_extensions import TypedDict

ABSTAIN_TEXT = "I don't have enough information to answer that."
ROUTES = ("simple", "expand", "multihop")
MAX_HISTORY = 40  # messages (20 turns) a thread keeps; condensation reads only the last few


def merge_hits(left: list[dict] | None, right: list[dict] | None) -> list[dict]:
    """Union of two hit lists, deduplicated by chunk id; a repeated chunk keeps its higher score."""
    merged: dict[str, dict] = {h["chunk_id"]: h for h in (left or [])}
    for hit in right or []:
        old = merged.get(hit["chunk_id"])
        if old is None or hit.get("score", 0.0) > old.get("score", 0.0):
            merged[hit["chunk_id"]] = hit
    return sorted(merged.values(), key=lambda h: -float(h.get("score", 0.0)))


def merge_retrievals(left: list[dict] | None, right: list[dict] | None) -> list[dict]:
    """Per-query result lists from parallel branches; the same query retrieved twice is kept once."""
    out = list(left or [])
    seen = {r["query"] for r in out}
    for item in right or []:
        if item["query"] not in seen:
            seen.add(item["query"])
            out.append(item)
    return out


def add_numbers(left: dict | None, right: dict | None) -> dict:
    """Sum numeric values key by key (timings and token usage from parallel branches)."""
    out = dict(left or {})
    for key, value in (right or {}).items():
        out[key] = round(out.get(key, 0) + value, 6)
    return out


def add_turns(left: list[dict] | None, right: list[dict] | None) -> list[dict]:
    """A conversation's messages with the new ones appended, the oldest dropped beyond MAX_HISTORY."""
    return [*(left or []), *(right or [])][-MAX_HISTORY:]


def add_unique(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Append strings not already present, keeping first-seen order."""
    out = list(left or [])
    out.extend(s for s in (right or []) if s not in out)
    return out


class InputState(TypedDict):
    """What a caller sends: the question and, optionally, a metadata filter for this question only."""

    question: str
    filters: NotRequired[dict[str, Any] | None]


class Citation(TypedDict):
    """One numbered source the answer cites."""

    n: int
    chunk_id: str
    doc_id: str
    title: str
    section: str
    source: str
    quote: str


class OutputState(TypedDict, total=False):
    """What a caller gets back (the keys of the CLI's --json and the API response)."""

    answer_id: str  # names this answer for feedback (and, traced, its Langfuse trace); runtime.answer_ids
    answer: str
    citations: list[Citation]
    route: str
    k: int
    faithfulness: float
    confidence: float
    abstained: bool
    generator: str
    timings: Annotated[dict[str, float], add_numbers]
    usage: Annotated[dict[str, float], add_numbers]
    degradations: Annotated[list[str], add_unique]
    contexts: list[str]
    retrieved: list[str]
    cache: dict[str, Any]  # set by ask/aask: {"response": "hit"|"miss"|"off", "retrieval_hits", ...}


class RetrieveTask(TypedDict):
    """The payload `Send` hands to one parallel retrieve branch."""

    query: str
    purpose: str  # "original" | "variant" | "subquestion" | "hop2"
    filters: NotRequired[dict[str, Any] | None]


class RAGState(InputState, OutputState, total=False):
    """The working state every node reads and partially updates."""

    route_reason: str
    features: dict[str, Any]
    probe: list[dict]  # quick first search made by classify (reused by expand/decompose)
    queries: list[RetrieveTask]  # planned retrieval queries
    subquestions: list[str]
    retrievals: Annotated[list[dict], merge_retrievals]  # [{query, purpose, hits:[hit dict]}]
    candidates: Annotated[list[dict], merge_hits]  # union of all retrieved hits, dedup by chunk id
    ranked: list[dict]  # fused + reranked, all candidates (retry takes more from here)
    documents: list[dict]  # ranked cut to adaptive k
    sources: list[dict]  # numbered, pruned context handed to the generator
    prune_stats: dict[str, Any]
    draft_citations: list[int]
    support: list[dict]  # per-sentence faithfulness details
    attempt: int
    started_at: float
    trace: Annotated[list[dict], operator.add]
    # conversation threads (a checkpointer keeps the state between questions): every finished run appends
    # {"role": "user", "content": asked, "standalone": question} and {"role": "assistant", "content":
    # answer, "doc_ids": [...]}; on a thread with history, condense rewrites `question` into a standalone
    # question and keeps the words as asked in `asked`
    history: Annotated[list[dict], add_turns]
    asked: str
    condensed: dict[str, Any]  # condense's note, kept in the trace that classify starts afresh
