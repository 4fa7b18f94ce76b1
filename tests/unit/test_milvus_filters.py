"""Filter translation for Milvus (tools/index/milvus_filters.py): exact expressions, string escaping against
hostile values, and parity with `filters.matches` on a real Milvus Lite collection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ragroute.tools import filters as F
from ragroute.tools.index import milvus_filters as MF
from ragroute.tools.types import AccessScope

pymilvus = pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

HOSTILE = [
    '" or chunk_id != "',
    "x') or (1 == 1",
    'back\\slash" or "1" == "1',
    "line\nbreak\r\n",
    "tab\tand\x01control",
    "ünïcödé 😀",
    "",
    "json_contains(filt, 1)",
]


# --------------------------------------------------------------------------- exact translation


def test_literal_escapes_quotes_backslashes_and_line_breaks() -> None:
    assert MF.literal('a"b') == '"a\\"b"'
    assert MF.literal("a\\b") == '"a\\\\b"'
    assert MF.literal("a\nb\rc") == '"a\\nb\\rc"'
    assert MF.literal('\\"') == '"\\\\\\""'  # a backslash before a quote cannot un-escape it


def test_compile_each_operator() -> None:
    def c(flt: dict[str, Any]) -> str:
        node = F.parse_filter(flt)
        assert node is not None
        return MF.compile_node(node)

    assert c({"doc_type": "faq"}) == 'json_contains(filt["doc_type"], "s:faq")'
    assert c({"n": {"$ne": 2}}) == '(not json_contains(filt["n"], "n:2.0"))'
    assert c({"b": True}) == 'json_contains(filt["b"], "b:true")'
    assert c({"t": {"$in": ["a", 1]}}) == 'json_contains_any(filt["t"], ["s:a", "n:1.0"])'
    assert c({"t": {"$nin": ["a"]}}) == '(not json_contains_any(filt["t"], ["s:a"]))'
    assert c({"t": {"$in": []}}) == MF.NEVER
    assert c({"n": {"$gt": 3}}) == 'filt["n__num"] > 3.0'
    assert c({"version": {"$gte": "2.10"}}) == 'filt["version__vkey"] >= 2010000000.0'
    assert c({"d": {"$lt": "2024-03-01"}}).startswith('filt["d__epoch"] < 17')
    assert c({"$or": [{"a": "x"}, {"b": "y"}]}) == (
        '(json_contains(filt["a"], "s:x") or json_contains(filt["b"], "s:y"))'
    )


def test_acl_expression() -> None:
    assert MF.acl_expr(None) is None
    assert MF.acl_expr(AccessScope()) is None
    assert MF.acl_expr(AccessScope.public()) == "(array_length(access_groups) == 0 and security_level <= 0)"
    assert MF.acl_expr(AccessScope(groups=["b", "a", "a"], clearance=2)) == (
        '((array_length(access_groups) == 0 or array_contains_any(access_groups, ["a", "b"])) '
        "and security_level <= 2)"
    )


def test_acl_columns_fail_closed() -> None:
    assert MF.acl_columns({}) == ([], 0)
    assert MF.acl_columns({"access_groups": "hr", "security_level": 1.5}) == (["hr"], 2)
    assert MF.acl_columns({"access_groups": [1, 2]}) == ([], MF.LOCKED)
    assert MF.acl_columns({"security_level": "high"}) == ([], MF.LOCKED)


def test_acl_conjunct_cannot_be_removed_by_a_filter() -> None:
    node = F.parse_filter({"$or": [{"a": "x"}, {"a": {"$ne": "x"}}]})
    expr = MF.scope_expr(node, AccessScope.public())
    assert expr.endswith(" and (array_length(access_groups) == 0 and security_level <= 0)")
    assert expr.startswith("deleted == false and (")


# --------------------------------------------------------------------------- real Milvus Lite

ROWS: list[dict[str, Any]] = [
    {"doc_type": "faq", "n": 1, "version": "2.10.0", "d": "2024-03-01", "tags": ["a", "b"], "flag": True},
    {"doc_type": "faq", "n": 1.0, "version": "2.9.1", "d": "2023-01-05T10:00:00Z", "tags": "a", "flag": 1},
    {"doc_type": "api", "n": "1", "version": "v3", "d": "yesterday", "tags": [1, "c"], "flag": False},
    {
        "doc_type": "api",
        "n": 7.5,
        "tags": [],
        "x": {"nested": 1},
        "access_groups": ["hr"],
        "security_level": 2,
    },
    {"doc_type": None, "version": "1.0", "access_groups": ["hr", "eng"], "security_level": 5},
    {"access_groups": [7], "security_level": 0},
    *({"h": value, "access_groups": [value] if value else []} for value in HOSTILE),
]

FILTERS: list[dict[str, Any]] = [
    {"doc_type": "faq"},
    {"doc_type": {"$ne": "faq"}},
    {"n": 1},
    {"n": {"$ne": 1}},
    {"n": {"$gte": 1.5}},
    {"n": {"$lt": 100}},
    {"flag": True},
    {"flag": 1},
    {"tags": "a"},
    {"tags": 1},
    {"tags": {"$nin": ["a", "c"]}},
    {"tags": {"$in": []}},
    {"tags": {"$nin": []}},
    {"version": {"$gt": "2.9.5"}},
    {"version": {"$lte": "2.10"}},
    {"d": {"$gte": "2024-01-01"}},
    {"d": {"$lt": "2024-01-01T00:00:00Z"}},
    {"x": {"$ne": 1}},
    {"$or": [{"doc_type": "api"}, {"version": {"$lt": "2"}}]},
    {"$and": [{"doc_type": {"$in": ["faq", "api"]}}, {"n": {"$gt": 0}}], "tags": {"$ne": "b"}},
    *({"h": value} for value in HOSTILE),
    *({"h": {"$ne": value}} for value in HOSTILE),
    {"h": {"$in": HOSTILE[:3]}},
]

SCOPES = [
    None,
    AccessScope.public(),
    AccessScope(groups=["hr"], clearance=2),
    AccessScope(groups=["eng"], clearance=9),
    *(AccessScope(groups=[value], clearance=0) for value in HOSTILE),
]


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """A real Milvus Lite chunks collection holding ROWS (ids "r0", "r1", ...)."""
    from ragroute.tools.index.milvus_schema import ensure_collections

    client = pymilvus.MilvusClient(str(Path(tmp_path_factory.mktemp("mf")) / "f.db"))
    names = ensure_collections(client, "t", 2)
    rows = []
    for i, meta in enumerate(ROWS):
        groups, level = MF.acl_columns(meta)
        rows.append(
            {
                **{"pk": f"r{i}", "chunk_id": f"r{i}", "doc_id": f"r{i}", "gen": "g", "ord": 0},
                **{"vector_id": f"r{i}", "parent_id": "", "text": "t", "terms": "t", "dense": [1.0, 0.5]},
                **{"metadata": meta, "filt": MF.filter_columns(meta), "doc_type": "", "deleted": False},
                **{"access_groups": groups, "security_level": level},
            }
        )
    client.insert(names["chunks"], rows)
    yield client, names["chunks"]
    client.close()


def _milvus_ids(lite: tuple[Any, str], expr: str) -> set[int]:
    client, name = lite
    return {int(r["pk"][1:]) for r in client.query(name, filter=expr, output_fields=["pk"])}


@pytest.mark.parametrize("flt", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_filter_parity_with_python(lite: tuple[Any, str], flt: dict[str, Any]) -> None:
    node = F.parse_filter(flt)
    expected = {i for i, meta in enumerate(ROWS) if F.matches(node, meta)}
    assert _milvus_ids(lite, MF.scope_expr(node, None)) == expected


@pytest.mark.parametrize("access", SCOPES, ids=[str(i) for i in range(len(SCOPES))])
def test_acl_parity_with_python(lite: tuple[Any, str], access: AccessScope | None) -> None:
    expected = {i for i, meta in enumerate(ROWS) if F.acl_allows(meta, access)}
    assert _milvus_ids(lite, MF.scope_expr(None, access)) == expected


def test_hostile_values_match_only_themselves(lite: tuple[Any, str]) -> None:
    first = ROWS.index(next(r for r in ROWS if "h" in r))
    for k, value in enumerate(HOSTILE):
        node = F.parse_filter({"h": value})
        assert _milvus_ids(lite, MF.scope_expr(node, None)) == {first + k}, value
