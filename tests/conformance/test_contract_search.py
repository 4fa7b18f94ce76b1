"""Backend contract: the search results themselves. Weighted RRF over the backend's dense and keyword lists
with per-source ranks and scores on every hit, metadata returned with its types intact (versions stay text,
levels stay numbers, lists stay lists), and the freshness and latest-version logic that reads that
metadata working the same on every backend, through the graph too."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.freshness import apply_decay
from ragroute.tools.hybrid import rrf_fuse
from ragroute.tools.types import AccessScope
from ragroute.tools.versions import prefer_latest

from tests.conftest import TINY_CORPUS

PUBLIC = AccessScope(groups=[], clearance=0)
QUERIES = ["access tokens expire", "what does error E1042 mean", "office cat", "reciprocal rank fusion"]


def test_empty_index_and_bad_queries(open_backend: Any) -> None:
    index = open_backend(empty=True)
    assert (
        index.search("anything") == [] and index.dense_search("x") == [] and index.keyword_search("x") == []
    )
    assert index.stats()["chunks"] == 0 and index.list_documents() == []
    for bad in ("", "  "):
        with pytest.raises(InputError):
            index.search(bad)
    with pytest.raises(InputError, match="k must be"):
        index.search("tokens", k=0)


@pytest.mark.parametrize("query", QUERIES)
def test_hits_carry_ranks_and_scores_of_each_source(tiny: Any, query: str) -> None:
    hits = tiny.search(query, k=6)
    assert hits and len({h.chunk_id for h in hits}) == len(hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        assert set(h.ranks) == {"dense", "bm25"} and any(r is not None for r in h.ranks.values())
        assert {n for n, r in h.ranks.items() if r is not None} == set(h.source_scores)
        assert h.metadata["doc_id"] == h.doc_id and h.parent_id == f"{h.doc_id}::p0" and h.text


@pytest.mark.parametrize("weights", [None, {"dense": 1.0, "bm25": 0.3}, {"dense": 0.0, "bm25": 2.0}])
def test_fusion_is_weighted_rrf_of_the_two_source_lists(tiny: Any, weights: dict | None) -> None:
    """The hybrid result equals rrf_fuse over the backend's own dense and keyword lists."""
    for query in QUERIES:
        n = tiny.config.candidate_k
        dense = [(h.chunk_id, h.source_scores["dense"]) for h in tiny.dense_search(query, k=n)]
        kw = [(h.chunk_id, h.source_scores["bm25"]) for h in tiny.keyword_search(query, k=n)]
        w = {**tiny.config.weights, **(weights or {})}
        want = rrf_fuse({"dense": dense, "bm25": kw}, rrf_k=tiny.config.rrf_k, weights=w, limit=5)
        got = tiny.search(query, k=5, weights=weights)
        assert [h.chunk_id for h in got] == [f.chunk_id for f in want], query
        assert [h.score for h in got] == pytest.approx([f.score for f in want])
        assert [h.ranks for h in got] == [f.ranks for f in want]
        assert all(h.source_scores == pytest.approx(f.source_scores) for h, f in zip(got, want, strict=True))


def test_dense_and_keyword_find_what_they_are_good_at(tiny: Any) -> None:
    assert tiny.keyword_search("E1042", k=1)[0].doc_id == "incident"
    assert tiny.keyword_search("E1042", k=1)[0].ranks == {"bm25": 1, "dense": None}
    para = tiny.dense_search("how long is a login credential valid before it lapses", k=3)
    assert "auth" in {h.doc_id for h in para} and para[0].ranks["dense"] == 1
    assert [h.score for h in para] == sorted((h.score for h in para), reverse=True)
    dense_only = tiny.search("token refresh", k=3, weights={"dense": 1.0, "bm25": 0.0})
    assert [h.chunk_id for h in dense_only] == [h.chunk_id for h in tiny.dense_search("token refresh", k=3)]
    with pytest.raises(ConfigError, match="unknown retriever"):
        tiny.search("tokens", weights={"sparse": 1.0})


def test_doc_type_weights_change_the_order(open_backend: Any) -> None:
    rows = [
        ("t", "Tech", "alpha bravo charlie", {"doc_type": "technical"}),
        ("c", "Concept", "alpha bravo charlie", {"doc_type": "conceptual"}),
    ]
    lean = {"technical": {"dense": 1.0, "bm25": 1.0}, "conceptual": {"dense": 2.0, "bm25": 2.0}}
    index = open_backend(rows, doc_type_weights=lean)
    hits = index.search("alpha bravo charlie", k=2)
    assert [h.doc_id for h in hits] == ["c", "t"]
    for h in hits:
        lean_of = lean[h.metadata["doc_type"]]
        rrf = sum(lean_of[n] / (index.config.rrf_k + r) for n, r in h.ranks.items() if r is not None)
        assert h.score == pytest.approx(rrf)


def test_asearch_matches_search(tiny: Any) -> None:
    for query in QUERIES:
        sync = tiny.search(query, k=5, access=PUBLIC)
        hits = asyncio.run(tiny.asearch(query, k=5, access=PUBLIC))
        assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in sync]


def test_metadata_comes_back_with_its_types(open_backend: Any) -> None:
    meta = {
        "doc_type": "technical",
        "version": "2.10",  # text that looks like a float: must not come back as 2.1
        "last_updated": "2025-03-01",
        "security_level": 0,
        "access_groups": [],
        "tags": ["api", "auth"],
        "draft": False,
        "priority": 2.5,
        "count": 3,
        "family": "Orbit API",
    }
    index = open_backend([("m", "Typed", "Typed metadata survives a round trip.", meta)])
    for got in (
        index.get_chunk("m::c0").metadata,
        index.search("typed metadata", k=1)[0].metadata,
        index.document_metadata("m"),
        index.list_documents()[0]["metadata"],
    ):
        for key, value in meta.items():
            assert got[key] == value and type(got[key]) is type(value), (key, got.get(key))
    chunk = index.get_chunk("m::c0").metadata
    assert chunk["title"] == "Typed" and chunk["chunk_index"] == 0 and chunk["source"] == "m.md"


RELEASES = [
    ("n29", "Orbit 2.9 Release Notes", "Orbit tokens now expire after 60 minutes.", "2.9", "2023-01-01"),
    ("n210", "Orbit 2.10 Release Notes", "Orbit tokens now expire after 15 minutes.", "2.10", "2025-01-01"),
    ("n299", "Orbit 2.9.9 Release Notes", "Orbit tokens now expire after 30 minutes.", "2.9.9", "2024-06-01"),
]
NOTES = [
    (d, t, x, {"doc_type": "release_notes", "version": v, "last_updated": u}) for d, t, x, v, u in RELEASES
]


def test_latest_version_preference_and_decay_read_the_metadata(open_backend: Any) -> None:
    index = open_backend(NOTES)
    hits = [h.to_dict() for h in index.search("when do orbit tokens expire", k=5)]
    assert {h["doc_id"] for h in hits} == {"n29", "n210", "n299"}
    assert [h["doc_id"] for h in prefer_latest(hits)] == ["n210"]  # "2.10" > "2.9.9" > "2.9"
    assert {h["doc_id"] for h in prefer_latest(hits, question="what changed in 2.9?")} == {"n210", "n29"}
    decayed = apply_decay(hits, {"*": 365.0}, today=dt.date(2025, 1, 1))
    factors = {h["doc_id"]: h["freshness"] for h in decayed}
    assert factors["n210"] == 1.0 and factors["n299"] == pytest.approx(0.5 ** (214 / 365))
    assert factors["n29"] == pytest.approx(0.5 ** (731 / 365))


async def test_the_graph_answers_from_the_newest_version(open_backend: Any) -> None:
    from ragroute.api import aask
    from ragroute.runtime import caching, providers

    caching.set_cache(None)
    index = open_backend([*TINY_CORPUS, *NOTES])
    bound = providers.Providers(index=index)
    out = await aask("When do Orbit tokens expire?", providers=bound)
    cited = {c["doc_id"] for c in out["citations"]}
    assert "n210" in cited and not cited & {"n29", "n299"}
    assert "15 minutes" in out["answer"]
    # the graph's searches carry the caller's scope: a public caller never gets the board minutes
    secret = await aask("What did the board approve?", providers=bound)
    assert all(not c.startswith("secret::") for c in secret["retrieved"] + secret["contexts"])
