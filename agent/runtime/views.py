"""What a graph run shows outside itself: the public fields of a node's update (streams) and a compact
summary of a node's input and output (traces), with LangGraph's control objects (`Overwrite`, `Send`)
and bookkeeping (checkpoint namespaces, trigger paths, step tags) taken out.

A state dict is recognised by its keys (any key of `RAGState` or `RetrieveTask`); other containers are
walked, so `{node: update}` stream chunks and `{"input": state}` event payloads are handled alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.types import Overwrite, Send
from ragroute.state import InputState, OutputState, RAGState, RetrieveTask

# what a caller may see of a run: its input, its output schema, the retrieve task, and the trace notes
PUBLIC_KEYS = frozenset(
    {*InputState.__annotations__, *OutputState.__annotations__, *RetrieveTask.__annotations__, "trace"}
)
STATE_KEYS = frozenset({*RAGState.__annotations__, *RetrieveTask.__annotations__})
HIT_KEYS = frozenset({"probe", "candidates", "ranked", "documents", "sources"})  # lists of hit dicts
# LangGraph's and LangChain's bookkeeping in run metadata and tags
INTERNAL_METADATA = frozenset(
    {"langgraph_triggers", "langgraph_path", "langgraph_checkpoint_ns", "checkpoint_ns"}
)
_STEP_TAG = re.compile(r"^(graph|seq):step:\d+$")


def unwrap(value: Any) -> Any:
    """`value` without LangGraph control objects at its top: an `Overwrite`'s value, a `Send` as
    {"send": node, "arg": its public fields}."""
    while isinstance(value, Overwrite):
        value = value.value
    if isinstance(value, Send):
        return {"send": value.node, "arg": public(value.arg)}
    return value


def _is_state(value: Any) -> bool:
    return isinstance(value, Mapping) and any(key in STATE_KEYS for key in value)


def public(value: Any) -> Any:
    """The public view of a stream chunk, event payload or state: state dicts cut to `PUBLIC_KEYS`."""
    value = unwrap(value)
    if _is_state(value):
        return {key: unwrap(v) for key, v in value.items() if key in PUBLIC_KEYS}
    if isinstance(value, Mapping):
        return {key: public(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [public(v) for v in value]
    return value


_OMIT = object()  # a field a trace span leaves out


def _num(value: Any) -> float | None:
    try:
        return round(float(value), 4)
    except (TypeError, ValueError):
        return None


def _score(hit: Mapping[str, Any]) -> float | None:
    return _num(hit.get("rerank_score", hit.get("score")))


def hits_summary(hits: Iterable[Mapping[str, Any]], score_key: str = "score") -> dict[str, list]:
    """Doc ids, chunk ids and scores (4 decimals) of a hit list: what a trace keeps of retrieved text."""
    hits = list(hits)
    return {
        "doc_ids": [h.get("doc_id", "") for h in hits],
        "chunk_ids": [h.get("chunk_id", "") for h in hits],
        "scores": [_num(h.get(score_key, h.get("score"))) or 0.0 for h in hits],
    }


def _summary_field(key: str, value: Any, detail: bool) -> Any:
    """One state field for a trace span; `_OMIT` when it says nothing about the step."""
    if key in HIT_KEYS and isinstance(value, list):
        if not detail:
            return {"count": len(value)}
        out: dict[str, Any] = {"count": len(value), "chunk_ids": [h.get("chunk_id", "") for h in value]}
        scores = [_score(h) for h in value]
        if any(s is not None for s in scores):
            out["scores"] = scores
        return out
    if key == "retrievals" and isinstance(value, list):
        if not detail:
            return {"count": len(value)}
        return [
            {"query": r.get("query"), "purpose": r.get("purpose"), "hits": len(r.get("hits") or [])}
            for r in value
        ]
    if detail or key == "filters" or value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return {"count": len(value)}
    return _OMIT  # a node's input: dicts such as timings or features belong to the step that wrote them


def summary(value: Any, *, detail: bool = True) -> Any:
    """A compact view of a node's input (`detail=False`: scalars, filters and counts) or output
    (`detail=True`: every field, hit lists as counts, chunk ids and scores) for a trace span."""
    value = unwrap(value)
    if _is_state(value):
        out = {}
        for key, field in value.items():
            shown = _summary_field(key, unwrap(field), detail)
            if shown is not _OMIT:
                out[key] = shown
        return out
    if isinstance(value, Mapping):
        return {key: summary(v, detail=detail) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [summary(v, detail=detail) for v in value]
    return value


def public_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Run metadata without LangGraph's bookkeeping (trigger paths, checkpoint namespaces)."""
    if metadata is None:
        return None
    return {k: v for k, v in metadata.items() if k not in INTERNAL_METADATA and not k.startswith("__")}


def public_tags(tags: Iterable[str] | None) -> list[str] | None:
    """Run tags without LangChain's step counters (`graph:step:3`, `seq:step:1`)."""
    if tags is None:
        return None
    return [t for t in tags if not _STEP_TAG.match(t)]
