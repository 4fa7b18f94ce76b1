"""Backend contract: Mongo-style filters and the ACL give exactly the same chunk sets on every search
path (dense, keyword, hybrid, async) as the Python semantics in ragroute.tools.filters, on every backend."""

from __future__ import annotations

import random
from typing import Any

import pytest
from ragroute.tools import filters as F
from ragroute.tools.errors import FilterError
from ragroute.tools.types import AccessScope

from tests.unit.test_filters import random_filter, random_meta, random_scope

PUBLIC = AccessScope(groups=[], clearance=0)

# values whose order as text differs from their order as versions, dates or numbers
TRICKY = [
    ("v19", {"version": "1.9", "last_updated": "2024-02-29", "priority": 2, "tags": ["api"]}),
    ("v110", {"version": "1.10", "last_updated": "2023-06-15T12:30:00Z", "priority": 10, "tags": []}),
    ("v1101", {"version": "1.10.1", "last_updated": "2024-12-31T23:59:59+00:00", "priority": 2.5}),
    ("v2", {"version": "v2.0", "last_updated": "2025-01-10", "priority": -1, "tags": ["ops", "api"]}),
    ("v10", {"version": "10.0", "last_updated": "not a date", "priority": "high", "draft": True}),
    ("bare", {"draft": False, "flag": 1}),
]


def corpus(rows: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [(d, f"Doc {d}", f"common words in document {d}", m) for d, m in rows]


def every_path(
    index: Any, filters: Any = None, access: AccessScope | None = None, q: str = "common words"
) -> list[set[str]]:
    """Doc ids each search path returns for `q` (a query with a word of every document), k covering all."""
    return [
        {h.doc_id for h in fn(q, k=200, filters=filters, access=access)}
        for fn in (index.search, index.dense_search, index.keyword_search)
    ]


@pytest.fixture(scope="module")
def tricky(shared_backend: Any) -> Any:
    return shared_backend(corpus(TRICKY))


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"version": {"$gt": "1.9"}}, {"v110", "v1101", "v2", "v10"}),  # "1.10" > "1.9" as versions
        ({"version": {"$lt": "1.10"}}, {"v19"}),
        ({"version": {"$gte": "1.10", "$lte": "2"}}, {"v110", "v1101", "v2"}),
        ({"last_updated": {"$gte": "2024-03-01"}}, {"v1101", "v2"}),  # dates as dates, with times
        ({"last_updated": {"$lt": "2024-02-29T12:00:00Z"}}, {"v19", "v110"}),
        ({"priority": {"$gt": 2}}, {"v110", "v1101"}),  # int and float compare as numbers, text never
        ({"priority": 2.0}, {"v19"}),
        ({"flag": True}, set()),  # a bool never equals an int
        ({"draft": False}, {"bare"}),
        ({"tags": "api"}, {"v19", "v2"}),  # a list field matches when any element does
        ({"tags": {"$in": ["ops", "nope"]}}, {"v2"}),
        ({"tags": {"$nin": ["api"]}}, {"v110", "v1101", "v10", "bare"}),  # missing field: $nin matches
        ({"draft": {"$ne": True}}, {"v19", "v110", "v1101", "v2", "bare"}),
        (
            {"$or": [{"version": "10.0"}, {"$and": [{"tags": "api"}, {"priority": {"$lt": 0}}]}]},
            {"v10", "v2"},
        ),
        ({"version": {"$in": []}}, set()),
        ({"doc_id": {"$in": ["v2", "bare"]}}, {"v2", "bare"}),  # doc_id is filterable metadata
    ],
)
def test_filter_semantics_on_every_path(tricky: Any, filters: dict, expected: set[str]) -> None:
    assert {d for d, m in TRICKY if F.matches(filters, {**m, "doc_id": d})} == expected  # the spec agrees
    assert every_path(tricky, filters) == [expected] * 3


@pytest.mark.parametrize(
    "bad",
    [
        {"title": {"$regex": "a.*"}},
        {"$not": {"doc_type": "policy"}},
        {"doc_type": {"$exists": True}},
        {"acl__public": True},
        {"security_level__vkey": {"$gt": 1}},
        {"version": {"$gt": "soon"}},
    ],
)
def test_bad_and_unsupported_filters_are_filter_errors(tiny: Any, bad: dict) -> None:
    for fn in (tiny.search, tiny.dense_search, tiny.keyword_search):
        with pytest.raises(FilterError):
            fn("tokens", k=5, filters=bad)


def test_random_filters_and_scopes_match_the_python_semantics(open_backend: Any) -> None:
    rng = random.Random(11)
    rows = corpus([(f"d{i}", random_meta(rng)) for i in range(40)])
    index = open_backend(rows)
    selective = 0
    for _ in range(25):
        flt, scope = random_filter(rng), random_scope(rng)
        expected = {d for d, *_, m in rows if F.matches(flt, {**m, "doc_id": d}, scope)}
        assert every_path(index, flt, scope) == [expected] * 3, (flt, scope)
        selective += 0 < len(expected) < len(rows)
    assert selective > 8


async def test_async_search_applies_filters_and_acl(tiny: Any) -> None:
    hits = await tiny.asearch("salary bands board tokens", k=50, filters={"language": "en"}, access=PUBLIC)
    assert {h.doc_id for h in hits} == {"auth", "auth-old", "rrf", "cats"}


# --------------------------------------------------------------------------- ACL

# a word of every TINY_CORPUS document, so keyword search can return each of them
Q = "tokens fusion salary E1042 cat Bereitstellung board"


@pytest.mark.parametrize(
    "access, visible",
    [
        (PUBLIC, {"auth", "auth-old", "rrf", "cats", "deploy-de"}),
        (
            AccessScope(groups=["eng"], clearance=1),
            {"auth", "auth-old", "rrf", "cats", "deploy-de", "incident"},
        ),
        (AccessScope(groups=["hr"], clearance=1), {"auth", "auth-old", "rrf", "cats", "deploy-de"}),
        (AccessScope(groups=["hr"], clearance=2), {"auth", "auth-old", "rrf", "cats", "deploy-de", "salary"}),
        (AccessScope(groups=[], clearance=9), {"auth", "auth-old", "rrf", "cats", "deploy-de"}),
        (None, {"auth", "auth-old", "rrf", "cats", "deploy-de", "incident", "salary", "secret"}),
    ],
    ids=["public", "eng-1", "hr-1", "hr-2", "no-groups-9", "unrestricted"],
)
def test_acl_needs_a_group_and_the_clearance(
    tiny: Any, access: AccessScope | None, visible: set[str]
) -> None:
    assert every_path(tiny, None, access, Q) == [visible] * 3
    for doc_id in {"salary", "secret", "incident"} - visible:
        assert tiny.get_chunk(f"{doc_id}::c0", access=access) is None
        assert tiny.get_parent(f"{doc_id}::p0", access=access) is None
    for doc_id in visible:
        assert tiny.get_chunk(f"{doc_id}::c0", access=access).doc_id == doc_id
        assert tiny.get_parent(f"{doc_id}::p0", access=access).doc_id == doc_id


@pytest.mark.parametrize(
    "escape",
    [
        {"$or": [{"category": "board"}, {"category": "misc"}]},
        {"$or": [{"access_groups": "board"}, {"doc_type": {"$ne": "nothing"}}]},
        {"$or": [{"security_level": {"$gte": 0}}, {"security_level": {"$lt": 0}}]},
        {"$and": [{"$or": [{"doc_id": "secret"}, {"doc_id": "salary"}, {"doc_id": "cats"}]}]},
        {"access_groups": {"$in": ["board", "hr"]}},
    ],
)
def test_no_filter_removes_the_acl_conjunct(tiny: Any, escape: dict) -> None:
    for seen in every_path(tiny, escape, PUBLIC, Q):
        assert seen.isdisjoint({"salary", "secret", "incident"}), escape


async def test_malformed_acl_fails_closed(open_backend: Any) -> None:
    rows = [
        ("text-level", "Memo", "The Bluebird merger closes in March.", {"security_level": "3"}),
        ("bool-groups", "Memo", "The Bluebird merger closes in April.", {"access_groups": True}),
        ("pets", "Office pets", "The office cat sleeps on the warm server rack.", {}),
    ]
    index = open_backend(rows)
    for access in (PUBLIC, AccessScope(groups=["board"], clearance=9)):
        asynced = {h.doc_id for h in await index.asearch("merger cat", 9, access=access)}
        for seen in [*every_path(index, None, access, "merger cat"), asynced]:
            assert seen == {"pets"}
    assert {h.doc_id for h in index.search("Bluebird merger", 3)} >= {"text-level", "bool-groups"}


def test_parent_is_visible_when_one_of_its_chunks_is(open_backend: Any) -> None:
    from ragroute.tools.types import Chunk, Parent

    index = open_backend(empty=True)
    parent = Parent("doc::p0", "doc", "Both halves of the section.", section="S")
    chunks = [
        Chunk("doc::c0", "doc", "First half.", {}, "doc::p0"),
        Chunk("doc::c1", "doc", "Second half.", {}, "doc::p0"),
    ]
    meta = {"access_groups": ["eng"], "security_level": 1}
    assert index.upsert_document("doc", chunks, [parent], content_hash="h", doc_metadata=meta) == "added"
    assert index.get_parent("doc::p0", access=PUBLIC) is None
    got = index.get_parent("doc::p0", access=AccessScope(groups=["eng"], clearance=1))
    assert got is not None and got.text == parent.text and got.section == "S"
    assert index.get_parent("doc::p0").doc_id == "doc"  # unrestricted
    assert index.get_parent("nope::p0") is None


def test_restricted_stats_count_only_visible_documents(tiny: Any) -> None:
    mine = tiny.stats(access=PUBLIC)
    assert mine["documents"] == 5 and mine["chunks"] == 7
    assert tiny.stats()["documents"] == 8
