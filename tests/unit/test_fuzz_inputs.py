"""Fuzzing of everything a user types: the filter parser (any JSON-like value or text gives a filter or a
FilterError/InputError, never another exception), queries on every index path and questions to ask()
(arbitrary unicode, control characters, lone surrogates, whitespace, other scripts, 1 MB): results, a
grounded answer or an InputError, never a crash."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ragroute.api import ask
from ragroute.runtime import providers
from ragroute.tools import filters as F
from ragroute.tools.errors import FilterError, InputError
from ragroute.tools.index import HybridIndex, IndexConfig
from ragroute.tools.types import AccessScope

from tests.conftest import corpus_batch

CHEAP = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
EMBEDS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
GRAPH = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))

OPS = [*F.COMPARISON_OPS, *F.LOGICAL_OPS, "$not", "$regex", "$", "$exists"]
FIELDS = ["doc_type", "version", "last_updated", "security_level", "access_groups", "tags", "acl__x", "a__b"]
ISOISH = ["2024-03-01", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2024-02-30", "1.2.3", "v9"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(ISOISH),
)
keys = st.one_of(st.sampled_from(OPS + FIELDS), st.text(max_size=8))
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=25,
)
# filter-shaped values, so the fuzzer spends time past the first type check
conditions = st.dictionaries(
    st.sampled_from(FIELDS), st.one_of(scalars, st.dictionaries(st.sampled_from(OPS), json_like, max_size=3))
)
filter_like = st.recursive(
    conditions,
    lambda inner: st.dictionaries(st.sampled_from(["$and", "$or"]), st.lists(inner, max_size=3), max_size=2),
    max_leaves=12,
)
metadata = st.dictionaries(st.sampled_from(FIELDS), json_like, max_size=5)
scopes = st.one_of(
    st.none(),
    st.builds(
        AccessScope,
        groups=st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3)),
        clearance=st.one_of(st.none(), st.integers(-3, 5)),
    ),
)


def check_filter(value: Any, meta: dict[str, Any], access: AccessScope | None) -> None:
    """A filter either parses (and then evaluates and compiles without error) or raises FilterError."""
    try:
        node = F.parse_filter(value)
    except (FilterError, InputError):
        return
    F.describe(value if isinstance(value, dict) else None)
    F.compile_where(node, access)
    assert isinstance(F.matches(node, meta, access), bool)


@CHEAP
@given(value=json_like, meta=metadata, access=scopes)
def test_any_json_value_is_a_filter_or_a_filter_error(value, meta, access):
    check_filter(value, meta, access)


@CHEAP
@given(value=filter_like, meta=metadata, access=scopes)
def test_filter_shaped_values(value, meta, access):
    check_filter(value, meta, access)


@CHEAP
@given(text=st.one_of(st.text(max_size=60), st.text(alphabet=string.printable + '{}[]":$', max_size=60)))
def test_any_filter_text_is_a_filter_or_a_filter_error(text):
    check_filter(text, {"doc_type": "x"}, None)


@CHEAP
@given(value=filter_like)
def test_filter_json_text_and_dict_agree(value):
    try:
        node = F.parse_filter(value)
    except FilterError as exc:
        with pytest.raises(FilterError):
            F.parse_filter(json.dumps(value))
        assert str(exc)
        return
    assert F.parse_filter(json.dumps(value)) == node


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"a":' * 100_000,
        '{"$and": [' * 5_000 + '{"a": 1}' + "]}" * 5_000,
        "\ud800",
        '{"a": "\\ud800"}',
        "",
        "null",
        "NaN",
        '{"a": NaN}',
        '{"a": {"$gt": Infinity}}',
    ],
)
def test_pathological_filter_text(text):
    check_filter(text, {"a": 1}, None)


def test_deeply_nested_filter_dict_is_a_filter_error():
    deep: dict[str, Any] = {"a": 1}
    for _ in range(5_000):
        deep = {"$and": [deep]}
    with pytest.raises(FilterError):
        F.parse_filter(deep)
    wide = {"$or": [{"doc_type": f"t{i}"} for i in range(2_000)]}
    assert F.matches(F.parse_filter(wide), {"doc_type": "t1999"})


# ------------------------------------------------------------------------------------------------ queries


@pytest.fixture(scope="module")
def fuzz_index(tmp_path_factory: Any, embedder: Any) -> Any:
    path = str(tmp_path_factory.mktemp("fuzz") / "index")
    index = HybridIndex(IndexConfig(path=path), embedder=embedder)
    index.upsert_documents(corpus_batch())
    yield index
    index.close()


any_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=20),
    st.text(alphabet=st.characters(categories=["Cs", "Co", "Cn", "Lo", "So", "Mn"]), max_size=20),
    st.sampled_from(["Wie erfolgt die Bereitstellung?", "كيف تعمل الرموز؟", "トークンの有効期限", "токены"]),
)


def check_query(index: Any, query: Any, **kw: Any) -> None:
    """Every path gives hits or an InputError."""
    for fn in (index.search, index.dense_search, index.keyword_search):
        try:
            hits = fn(query, 5, **kw)
        except InputError:
            continue
        assert isinstance(hits, list) and len(hits) <= 5
        assert all(h.chunk_id in index.chunk_ids() for h in hits)


@EMBEDS
@given(query=any_text)
def test_any_query_gives_hits_or_an_input_error(fuzz_index, query):
    check_query(fuzz_index, query)


@EMBEDS
@given(query=any_text, filters=filter_like, access=scopes)
async def test_any_query_with_any_filter(fuzz_index, query, filters, access):
    check_query(fuzz_index, query, filters=filters, access=access)
    try:
        hits = await fuzz_index.asearch(query, 3, filters=filters, access=access)
    except InputError:
        return
    assert all(F.matches(filters, h.metadata, access) for h in hits)


@pytest.mark.parametrize(
    "query",
    [
        "",
        " \t\n\r\x0b\x0c",
        "\u200b\u2028\u3000",
        "\x00",
        "\x00\x01\x02 tokens \x7f",
        "\ud800 tokens",
        "tokens \udfff",
        "\u202eexpire tokens",
        "a" * 1_000_000,
        "token expire " * 80_000,
        "🙂" * 5_000,
        None,
        123,
        b"tokens",
        ["tokens"],
    ],
    ids=lambda q: repr(q)[:24],
)
def test_edge_queries(fuzz_index, query):
    check_query(fuzz_index, query)


@pytest.mark.parametrize("k", [0, -1, 10**9, 1.5, True, "5", None])
def test_bad_k_is_an_input_error(fuzz_index, k):
    with pytest.raises(InputError):
        fuzz_index.search("tokens", k)


# -------------------------------------------------------------------------------------------------- ask()


def check_ask(index: Any, question: Any) -> None:
    """An InputError, or an answer that abstains or cites the sources it used."""
    try:
        out = ask(question, providers=providers.Providers(index=index))
    except InputError:
        return
    assert isinstance(out["answer"], str) and out["answer"]
    if out["abstained"]:
        assert out["citations"] == []
    else:
        assert out["citations"], out
        assert {c["chunk_id"] for c in out["citations"]} <= set(out["contexts"])
        assert all(f"[{c['n']}]" in out["answer"] for c in out["citations"])


@pytest.mark.parametrize(
    "question",
    [
        "",
        "   \n\t",
        "\x00\x01\x02",
        "How long do access tokens last?\x00",
        "\ud800 access tokens",
        "a" * 1_000_000,
        "Wie erfolgt die Bereitstellung?",
        "كيف تعمل الرموز؟",
        "アクセストークンはいつ期限切れになりますか",
        "\u202eHow long do access tokens last?",
        None,
        42,
    ],
    ids=lambda q: repr(q)[:24],
)
def test_ask_with_bad_or_foreign_input(fuzz_index, question):
    check_ask(fuzz_index, question)


def test_ask_answers_a_german_question_from_the_german_document(fuzz_index):
    out = ask("Wie erfolgt die Bereitstellung?", providers=providers.Providers(index=fuzz_index))
    assert not out["abstained"] and out["citations"][0]["doc_id"] == "deploy-de"


@GRAPH
@given(question=any_text)
def test_ask_with_fuzzed_questions(fuzz_index, question):
    check_ask(fuzz_index, question)
