"""Versioned documents: families, and the graph answering from the newest version unless a filter or the
question asks for an older one."""

from __future__ import annotations

from typing import Any

import pytest
from ragroute.api import aask
from ragroute.runtime import caching, providers
from ragroute.tools.versions import family_of, filters_name, prefer_latest

RELEASES = [
    (
        "rel-2.9.1",
        "Orbit 2.9.1 Release Notes",
        "The default workflow timeout is 30 minutes in this release.",
        {"doc_type": "release_notes", "version": "2.9.1", "last_updated": "2026-03-20"},
    ),
    (
        "rel-2.10.0",
        "Orbit 2.10.0 Release Notes",
        "The default workflow timeout is 45 minutes in this release.",
        {"doc_type": "release_notes", "version": "2.10.0", "last_updated": "2026-09-01"},
    ),
    (
        "guide",
        "Timeout guide",
        "Set the workflow timeout per workflow with the timeout_minutes option.",
        {"doc_type": "technical"},
    ),
]


def hit(doc_id: str, **meta: Any) -> dict:
    meta["doc_id"] = doc_id
    return {"chunk_id": f"{doc_id}::0", "doc_id": doc_id, "score": 1.0, "metadata": meta}


def test_family_is_explicit_or_title_without_version() -> None:
    a = {"title": "Orbit 2.9.1 Release Notes", "version": "2.9.1", "doc_type": "release_notes"}
    b = {"title": "Orbit v2.10.0 Release Notes", "version": "2.10.0", "doc_type": "release_notes"}
    assert family_of(a) == family_of(b) == "release_notes|orbit release notes"
    assert family_of({**a, "family": "Orbit-Notes"}) == "family:orbit-notes" != family_of(b)
    assert family_of({"title": "No version"}) == ""
    assert family_of({**a, "doc_type": "faq"}) != family_of(a)


def test_prefer_latest_drops_older_versions_only() -> None:
    hits = [
        hit("old", title="Guide 1.9", version="1.9", doc_type="t"),
        hit("plain", title="Other"),
        hit("new", title="Guide 1.10", version="1.10", doc_type="t"),
        hit("other-family", title="Manual 1.0", version="1.0", doc_type="t"),
    ]
    assert [h["doc_id"] for h in prefer_latest(hits)] == ["plain", "new", "other-family"]
    # a version filter, anywhere in the filter, keeps everything
    assert prefer_latest(hits, filters={"$and": [{"version": {"$lt": "1.10"}}]}) == hits
    assert filters_name({"$or": [{"a": 1}, {"version": "1"}]}, "version")
    # a version the question names is kept; a prefix of another version is not a mention
    assert "old" in {h["doc_id"] for h in prefer_latest(hits, question="What changed in 1.9?")}
    assert "old" not in {h["doc_id"] for h in prefer_latest(hits, question="What changed in 1.9.3?")}


def test_same_version_or_dated_siblings() -> None:
    same = [hit(d, title="X 2", version="2", doc_type="t") for d in ("a", "b")]
    assert len(prefer_latest(same)) == 2
    dated = [
        hit("a", title="X beta", version="beta", doc_type="t", last_updated="2025-01-01"),
        hit("b", title="X rc", version="rc", doc_type="t", family="x", last_updated="2025-02-01"),
        # "1.0" and "rc" do not compare as versions: the later last_updated wins
        hit("c", title="X 1.0", version="1.0", doc_type="t", family="x", last_updated="2024-02-01"),
    ]
    assert [h["doc_id"] for h in prefer_latest(dated)] == ["a", "b"]


@pytest.fixture
def releases(make_index: Any) -> providers.Providers:
    caching.set_cache(None)
    return providers.Providers(index=make_index(RELEASES))


async def test_graph_answers_from_the_newest_version(releases: providers.Providers) -> None:
    q = "What is the default workflow timeout?"
    out = await aask(q, providers=releases, route="simple")
    cited = {c["doc_id"] for c in out["citations"]}
    assert "rel-2.10.0" in cited and "rel-2.9.1" not in cited and "45 minutes" in out["answer"]
    assert not any(cid.startswith("rel-2.9.1") for cid in out["retrieved"])
    # asked for by filter, or by name: the older version is used
    old = await aask(q, providers=releases, route="simple", filters={"version": "2.9.1"})
    assert {c["doc_id"] for c in old["citations"]} == {"rel-2.9.1"} and "30 minutes" in old["answer"]
    named = await aask("What was the default workflow timeout in 2.9.1?", providers=releases, route="simple")
    assert any(cid.startswith("rel-2.9.1") for cid in named["retrieved"])
    # and the knob turns it off
    both = await aask(q, providers=releases, route="simple", prefer_latest_version=False)
    assert any(cid.startswith("rel-2.9.1") for cid in both["retrieved"])
