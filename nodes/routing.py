"""Edge functions: where the graph starts (condense on a thread with history), goes after classify, the
planners, and verify."""

from __future__ import annotations

from langgraph.types import Send
from ragroute.state import RAGState


def original_task(state: RAGState) -> Send:
    """A retrieve branch for the question itself."""
    return Send(
        "retrieve", {"query": state["question"], "purpose": "original", "filters": state.get("filters")}
    )


def at_start(state: RAGState) -> str:
    """A thread with earlier turns condenses the question first; a first question goes to classify."""
    return "condense" if state.get("history") else "classify"


def after_classify(state: RAGState) -> list[Send] | str:
    """simple -> one retrieve branch; expand -> expand; multihop -> decompose."""
    route = state.get("route", "simple")
    if route == "expand":
        return "expand"
    if route == "multihop":
        return "decompose"
    return [original_task(state)]


def fan_out(state: RAGState) -> list[Send]:
    """One parallel retrieve branch per planned query (the question itself when nothing was planned)."""
    tasks = [Send("retrieve", dict(q)) for q in state.get("queries") or []]
    return tasks or [original_task(state)]


def after_verify(state: RAGState) -> str:
    """Retry from prune when verify asked for it (attempt grew), else finish."""
    last = (state.get("trace") or [{}])[-1]
    return "prune" if last.get("node") == "verify" and last.get("verdict") == "retry" else "finalize"
