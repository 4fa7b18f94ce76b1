"""Filters: validation messages, Python semantics, and exact parity between Chroma `where` and Python."""

from __future__ import annotations

import random

import pytest
from ragroute.tools import filters as F
from ragroute.tools.errors import FilterError
from ragroute.tools.types import AccessScope
from ragroute.tools.vectorstore import VectorStore

META = [
    {
        "doc_type": "technical",
        "version": "2.10.0",
        "last_updated": "2025-03-01",
        "tags": ["api", "auth"],
        "security_level": 0,
        "access_groups": [],
        "score": 0.9,
        "draft": False,
    },
    {
        "doc_type": "technical",
        "version": "2.9.1",
        "last_updated": "2023-06-15T12:30:00Z",
        "tags": ["auth"],
        "security_level": 1,
        "access_groups": ["eng"],
        "score": 3,
        "draft": True,
    },
    {
        "doc_type": "conceptual",
        "version": "v2.10",
        "last_updated": "2025-01-10",
        "tags": [],
        "security_level": 2,
        "access_groups": ["hr", "eng"],
        "score": 1.5,
    },
    {
        "doc_type": "policy",
        "version": "1.0",
        "last_updated": "not a date",
        "security_level": 0,
        "access_groups": ["board"],
        "score": "high",
    },
    {"doc_type": "tutorial", "last_updated": "2024-02-29", "tags": ["api"], "access_groups": []},
    {"version": "10.0.0", "security_level": 3, "access_groups": ["eng", "ops"], "draft": False, "score": 2},
    {
        "doc_type": "technical",
        "version": "2.10.1",
        "last_updated": "2025-05-20",
        "tags": ["ops", "api"],
        "security_level": 1,
        "access_groups": ["ops"],
        "score": 1,
    },
    {},
]


def ids_matching(filters, access=None):
    return {i for i, m in enumerate(META) if F.matches(filters, m, access)}


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"doc_type": "technical"}, {0, 1, 6}),
        ({"doc_type": {"$ne": "technical"}}, {2, 3, 4, 5, 7}),
        ({"version": {"$gt": "2.9.1"}}, {0, 2, 5, 6}),
        ({"version": {"$gte": "2.10.0", "$lt": "3"}}, {0, 2, 6}),
        ({"version": {"$lte": "v2.9.9"}}, {1, 3}),
        ({"last_updated": {"$gte": "2025-01-01"}}, {0, 2, 6}),
        ({"last_updated": {"$lt": "2024-03-01T00:00:00+00:00"}}, {1, 4}),
        ({"tags": "api"}, {0, 4, 6}),
        ({"tags": {"$in": ["ops", "auth"]}}, {0, 1, 6}),
        ({"tags": {"$nin": ["api"]}}, {1, 2, 3, 5, 7}),
        ({"score": {"$gt": 1}}, {2, 1, 5}),
        ({"draft": False}, {0, 5}),
        ({"score": 1}, {6}),
        ({"$or": [{"doc_type": "policy"}, {"security_level": {"$gte": 3}}]}, {3, 5}),
        ({"$and": [{"doc_type": "technical"}, {"tags": "auth"}], "draft": True}, {1}),
        ({"doc_type": {"$in": []}}, set()),
        ({"doc_type": {"$nin": []}}, set(range(8))),
    ],
)
def test_python_semantics(filters, expected):
    assert ids_matching(filters) == expected


def test_acl_semantics():
    public = AccessScope(groups=[], clearance=0)
    assert ids_matching(None, public) == {0, 4, 7}
    assert ids_matching(None, AccessScope(groups=["eng"], clearance=1)) == {0, 1, 4, 7}
    assert ids_matching(None, AccessScope(groups=["eng"], clearance=5)) == {0, 1, 2, 4, 5, 7}
    assert ids_matching(None, AccessScope()) == set(range(8))
    # ACL is a conjunct: a filter can only narrow it
    assert ids_matching({"$or": [{"doc_type": "policy"}, {"tags": "api"}]}, public) == {0, 4}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"title": {"$regex": "x"}}, r"unknown operator '\$regex'"),
        ({"$not": {"a": 1}}, r"unknown operator '\$not'"),
        ({"a": {"$in": "x"}}, "must be a list"),
        ({"a": {"$gt": "soon"}}, "number, an ISO date"),
        ({"a": {"$gt": True}}, "number, an ISO date"),
        ({"$and": []}, "non-empty list"),
        ({"$or": [1]}, "filter objects"),
        ({"a": [1, 2]}, r"\$in"),
        ({"a": {"$eq": {"b": 1}}}, "string, number or boolean"),
        ({"a": {}}, "empty operator"),
        ({"acl__public": True}, "reserved"),
        ("{not json", "not valid JSON"),
        ([1], "JSON object"),
    ],
)
def test_bad_filters_raise_filter_error(bad, message):
    with pytest.raises(FilterError, match=message):
        F.parse_filter(bad)


def test_json_text_and_empty():
    assert F.parse_filter(None) is None and F.parse_filter({}) is None
    assert ids_matching(F.parse_filter('{"doc_type": "policy"}')) == {3}


# --------------------------------------------------------------------------- Chroma parity

FIELDS = {
    "doc_type": ["technical", "conceptual", "policy", "tutorial", "faq"],
    "category": ["a", "b", "c"],
    "version": ["1.0", "1.2.3", "2.9.1", "2.10.0", "v2.10", "10.0.0", "0.9"],
    "last_updated": ["2022-01-01", "2023-06-15T12:00:00Z", "2024-02-29", "2025-01-10", "2025-05-20"],
    "priority": [0, 1, 2, 2.5, 7],
    "draft": [True, False],
    "tags": [[], ["api"], ["api", "auth"], ["ops"], ["auth", "ops", "api"]],
}
GROUPS = ["eng", "hr", "ops", "board"]


def random_meta(rng: random.Random) -> dict:
    meta = {k: rng.choice(v) for k, v in FIELDS.items() if rng.random() < 0.8}
    meta["access_groups"] = rng.sample(GROUPS, rng.choice([0, 0, 1, 2]))
    if rng.random() < 0.7:
        meta["security_level"] = rng.randint(0, 3)
    return meta


def random_cond(rng: random.Random) -> dict:
    field = rng.choice(list(FIELDS))
    values = [v for v in FIELDS[field] if not isinstance(v, list)] or ["api", "auth", "ops", "nope"]
    op = rng.choice(["eq", "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte"])
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if field in ("version", "last_updated", "priority"):
            return {field: {op: rng.choice(values)}}
        op = "$eq"
    if op in ("$in", "$nin"):
        return {field: {op: rng.sample(values, rng.randint(1, min(3, len(values))))}}
    v = rng.choice(values)
    return {field: v} if op == "eq" else {field: {op: v}}


def random_filter(rng: random.Random, depth: int = 0) -> dict:
    if depth < 2 and rng.random() < 0.4:
        op = rng.choice(["$and", "$or"])
        return {op: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    return random_cond(rng)


def random_scope(rng: random.Random) -> AccessScope | None:
    r = rng.random()
    if r < 0.3:
        return None
    return AccessScope(groups=rng.sample(GROUPS, rng.randint(0, 2)), clearance=rng.randint(0, 3))


def test_chroma_where_matches_python_exactly(tmp_path):
    rng = random.Random(7)
    metas = [random_meta(rng) for _ in range(120)]
    store = VectorStore(path=str(tmp_path / "chroma"), collection="parity")
    ids = [f"c{i}" for i in range(len(metas))]
    embs = [[rng.random() + 0.01 for _ in range(8)] for _ in metas]
    store.upsert(ids, embs, [F.chroma_metadata(m) for m in metas])
    checked = 0
    for _ in range(300):
        flt = random_filter(rng)
        scope = random_scope(rng)
        expected = {ids[i] for i, m in enumerate(metas) if F.matches(flt, m, scope)}
        where = F.compile_where(flt, scope)
        got = {cid for cid, _ in store.query(embs[0], len(ids), where=where)} if where else set(ids)
        assert got == expected, (flt, scope, where)
        checked += bool(expected) and len(expected) < len(ids)
    assert checked > 100  # most random filters were selective, so the comparison means something


def test_index_paths_return_exactly_the_allowed_sets(make_index):
    rng = random.Random(11)
    corpus = [
        (f"d{i}", f"Doc {i}", f"common words in document number {i}", random_meta(rng)) for i in range(60)
    ]
    index = make_index(corpus)
    metas = {f"d{i}::c0": row[3] for i, row in enumerate(corpus)}
    selective = 0
    for _ in range(60):
        flt = random_filter(rng)
        scope = random_scope(rng)
        expected = {cid for cid, m in metas.items() if F.matches(flt, m, scope)}
        dense = {h.chunk_id for h in index.dense_search("common words", k=100, filters=flt, access=scope)}
        keyword = {h.chunk_id for h in index.keyword_search("common", k=100, filters=flt, access=scope)}
        hybrid = {h.chunk_id for h in index.search("common words", k=100, filters=flt, access=scope)}
        assert dense == expected, (flt, scope)
        assert keyword == expected, (flt, scope)
        assert hybrid == expected, (flt, scope)
        selective += 0 < len(expected) < len(metas)
    assert selective > 20
