"""ragroute.runtime.views: the public view of graph updates (streams) and the summary of state (traces)."""

from __future__ import annotations

from langgraph.types import Overwrite, Send
from ragroute.runtime.views import hits_summary, public, public_metadata, public_tags, summary

HITS = [
    {"chunk_id": "a.md::1::0", "doc_id": "a.md", "text": "long text " * 50, "score": 0.123456},
    {"chunk_id": "b.md::2::0", "doc_id": "b.md", "text": "more text", "score": 0.1, "rerank_score": 0.9},
]
CLASSIFY_UPDATE = {
    "route": "simple",
    "features": {"n_words": 9},
    "probe": HITS,
    "candidates": Overwrite([]),
    "usage": Overwrite({}),
    "trace": Overwrite([{"node": "classify", "route": "simple"}]),
}


def test_public_keeps_output_fields_and_unwraps_overwrite() -> None:
    chunk = {"classify": CLASSIFY_UPDATE}
    assert public(chunk) == {
        "classify": {"route": "simple", "usage": {}, "trace": [{"node": "classify", "route": "simple"}]}
    }


def test_public_shows_a_send_as_its_node_and_task() -> None:
    task = {"query": "q", "purpose": "variant", "filters": None}
    assert public({"output": [Send("retrieve", task)]}) == {"output": [{"send": "retrieve", "arg": task}]}


def test_summary_of_an_output_keeps_fields_and_cuts_hits_to_ids_and_scores() -> None:
    assert summary(CLASSIFY_UPDATE) == {
        "route": "simple",
        "features": {"n_words": 9},
        "probe": {"count": 2, "chunk_ids": ["a.md::1::0", "b.md::2::0"], "scores": [0.1235, 0.9]},
        "candidates": {"count": 0, "chunk_ids": []},
        "usage": {},
        "trace": [{"node": "classify", "route": "simple"}],
    }


def test_summary_of_an_input_keeps_scalars_filters_and_counts() -> None:
    state = {
        "question": "q?",
        "filters": {"lang": "en"},
        "attempt": 0,
        "documents": HITS,
        "retrievals": [{"query": "q?", "purpose": "original", "hits": HITS}],
        "timings": {"classify": 1.0},
        "trace": [{"node": "classify"}],
    }
    assert summary(state, detail=False) == {
        "question": "q?",
        "filters": {"lang": "en"},
        "attempt": 0,
        "documents": {"count": 2},
        "retrievals": {"count": 1},
        "trace": {"count": 1},
    }
    out = summary({"retrievals": [{"query": "q?", "purpose": "original", "hits": HITS}]})
    assert out == {"retrievals": [{"query": "q?", "purpose": "original", "hits": 2}]}


def test_hits_summary_and_metadata_without_langgraph_bookkeeping() -> None:
    assert hits_summary(HITS, "rerank_score") == {
        "doc_ids": ["a.md", "b.md"],
        "chunk_ids": ["a.md::1::0", "b.md::2::0"],
        "scores": [0.1235, 0.9],
    }
    meta = {
        "langgraph_node": "rerank",
        "langgraph_step": 3,
        "langgraph_triggers": ["branch:to:rerank"],
        "langgraph_path": ["__pregel_pull", "rerank"],
        "langgraph_checkpoint_ns": "rerank:0f",
        "langfuse_user_id": "alice",
    }
    assert public_metadata(meta) == {
        "langgraph_node": "rerank",
        "langgraph_step": 3,
        "langfuse_user_id": "alice",
    }
    assert public_tags(["graph:step:3", "seq:step:1", "ragroute"]) == ["ragroute"]
    assert public_metadata(None) is None and public_tags(None) is None
