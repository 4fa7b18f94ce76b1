"""Cache keys, LRU/TTL levels, index-version invalidation, stats and thread safety."""

from __future__ import annotations

import random
import sys
import threading
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ragroute.tools.cache import (
    CachedEmbedder,
    LRUCache,
    RagCache,
    TTLCache,
    acached_search,
    cache_key,
    cached_search,
    scope_part,
)
from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.types import AccessScope, SearchHit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -------------------------------------------------------------------------------------------------- keys


def test_key_is_independent_of_dict_key_order_and_group_order():
    a = cache_key(
        query="q",
        filters={"doc_type": "api", "$or": [{"a": 1}, {"b": {"$in": ["x", "y"]}}]},
        access=AccessScope(groups=["eng", "hr"], clearance=2),
        context={"k": 5, "rerank": True},
        index_version=7,
    )
    b = cache_key(
        index_version=7,
        context={"rerank": True, "k": 5},
        access=AccessScope(groups=["hr", "eng", "eng"], clearance=2),
        filters={"$or": [{"a": 1}, {"b": {"$in": ["x", "y"]}}], "doc_type": "api"},
        query="q",
    )
    assert a == b and len(a) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"query": "q2"},
        {"filters": {"doc_type": "guide"}},
        {"access": AccessScope(groups=["eng"], clearance=3)},
        {"access": AccessScope(groups=["eng", "finance"], clearance=2)},
        {"access": AccessScope(groups=[], clearance=2)},
        {"access": None},
        {"context": {"k": 6}},
        {"index_version": 8},
    ],
)
def test_every_part_changes_the_key(change):
    base = {
        "query": "q",
        "filters": {"doc_type": "api"},
        "access": AccessScope(groups=["eng"], clearance=2),
        "context": {"k": 5},
        "index_version": 7,
    }
    assert cache_key(**base) != cache_key(**{**base, **change})


def test_unrestricted_scope_differs_from_no_groups_and_omitted_access_means_unrestricted():
    assert scope_part(AccessScope()) != scope_part(AccessScope(groups=[]))
    assert cache_key(query="q") == cache_key(query="q", access=None)
    assert cache_key(query="q") != cache_key(query="q", access=AccessScope(groups=[], clearance=0))


def test_key_rejects_unhashable_inputs_clearly():
    with pytest.raises(InputError, match="unsupported type object"):
        cache_key(query=object())
    with pytest.raises(InputError, match="not a finite number"):
        cache_key(weights={"dense": float("nan")})
    with pytest.raises(InputError, match="non-string key"):
        cache_key(filters={1: "x"})


def test_key_accepts_dataclasses_and_sets():
    @dataclass
    class Ctx:
        k: int
        tags: frozenset[str]

    assert cache_key(ctx=Ctx(3, frozenset({"b", "a"}))) == cache_key(ctx={"tags": ["a", "b"], "k": 3})


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=5),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_fuzz_filter_key_order_never_changes_the_key(filters):
    items = list(filters.items())
    random.Random(0).shuffle(items)
    assert cache_key(filters=filters) == cache_key(filters=dict(items))


# -------------------------------------------------------------------------------------------- LRU / TTL


def test_lru_evicts_least_recently_used_first():
    c: LRUCache[int] = LRUCache(3)
    for k in "abc":
        c.put(k, ord(k))
    assert c.get("a") == ord("a")  # a becomes most recent: order b, c, a
    c.put("d", 4)  # evicts b
    assert c.keys() == ["c", "a", "d"]
    assert c.get("b") is None
    c.put("e", 5)  # evicts c
    assert "c" not in c and len(c) == 3
    s = c.stats()
    assert (s["hits"], s["misses"], s["evictions"], s["hit_rate"]) == (1, 1, 2, 0.5)


def test_ttl_expiry_with_injected_clock():
    clock = FakeClock()
    c: TTLCache[str] = TTLCache(10, clock=clock)
    c.put("k", "v")
    clock.now += 9.99
    assert c.get("k") == "v"
    clock.now += 0.01
    assert c.get("k") is None
    assert "k" not in c
    assert c.stats()["expirations"] == 1


def test_versioned_entries_are_never_served_for_another_version():
    c: LRUCache[str] = LRUCache(10)
    c.put("k", "old", version=1)
    assert c.get("k", version=1) == "old"
    assert c.get("k", version=2) is None  # bumped version misses
    assert "k" not in c  # and the stale entry is gone
    c.put("k", "new", version=3)
    assert c.get("k", version=2) is None  # an older reader misses but does not destroy the new entry
    assert c.get("k", version=3) == "new"


def test_invalidate_before_drops_and_refuses_old_versions():
    c: LRUCache[str] = LRUCache(10)
    c.put("a", "1", version=1)
    c.put("b", "2", version=2)
    assert c.invalidate_before(2) == 1
    assert c.keys() == ["b"]
    c.put("late", "computed on v1", version=1)  # a slow request finishing after the bump
    assert "late" not in c


def test_get_or_compute_calls_once():
    c: LRUCache[int] = LRUCache(4)
    calls = []
    for _ in range(3):
        assert c.get_or_compute("k", lambda: calls.append(1) or 42) == 42
    assert len(calls) == 1


def test_invalid_configuration():
    with pytest.raises(ConfigError, match="max_entries must be an int >= 1, got 0"):
        LRUCache(0)
    with pytest.raises(ConfigError, match="ttl_s must be a number > 0"):
        TTLCache(-1)
    with pytest.raises(ConfigError, match="unknown cache level 'answers'; options: embeddings"):
        RagCache().level("answers")
    with pytest.raises(ConfigError, match="index version must be an int"):
        RagCache().set_index_version("3")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ multi-level


def test_scopes_never_share_a_response_entry():
    rc = RagCache()
    rc.set_index_version(1)
    hr = AccessScope(groups=["hr"], clearance=1)
    eng = AccessScope(groups=["eng"], clearance=1)
    k_hr = cache_key(query="salary bands", access=hr, index_version=1)
    rc.responses.put(k_hr, {"answer": "HR-only text"}, version=1)
    k_eng = cache_key(query="salary bands", access=eng, index_version=1)
    assert rc.responses.get(k_eng, version=1) is None
    k_public = cache_key(query="salary bands", access=AccessScope(groups=[], clearance=0), index_version=1)
    assert rc.responses.get(k_public, version=1) is None
    assert rc.responses.get(k_hr, version=1) == {"answer": "HR-only text"}


def test_index_version_bump_invalidates_retrieval_and_responses_but_not_embeddings():
    clock = FakeClock()
    rc = RagCache(clock=clock)
    rc.set_index_version(1)
    ek = RagCache.embedding_key("minilm", "hello")
    rc.embeddings.put(ek, [0.1, 0.2])
    rk = cache_key(query="q", index_version=1)
    rc.retrieval.put(rk, ["c1"], version=1)
    rc.responses.put(rk, "a", version=1)
    rc.set_index_version(2)
    assert rc.retrieval.get(rk, version=2) is None
    assert rc.responses.get(rk, version=2) is None
    assert len(rc.retrieval) == 0 and len(rc.responses) == 0
    assert rc.embeddings.get(ek) == [0.1, 0.2]
    rc.set_index_version(1)  # going backwards is ignored
    assert rc.index_version == 2
    s = rc.stats()
    assert s["index_version"] == 2
    assert s["embeddings"]["hits"] == 1 and s["retrieval"]["misses"] == 1 and s["responses"]["misses"] == 1


def test_response_ttl_is_separate_from_retrieval_ttl():
    clock = FakeClock()
    rc = RagCache(retrieval_ttl_s=5, response_ttl_s=60, clock=clock)
    rc.retrieval.put("k", 1)
    rc.responses.put("k", 2)
    clock.now += 10
    assert rc.retrieval.get("k") is None
    assert rc.responses.get("k") == 2


# ------------------------------------------------------------------------------------------- threading


def test_concurrent_use_from_threads_is_safe():
    c: LRUCache[int] = LRUCache(64)
    errors: list[BaseException] = []
    n_threads, n_ops = 8, 2000
    barrier = threading.Barrier(n_threads)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait()
            for _ in range(n_ops):
                k = f"k{rng.randrange(128)}"
                v = c.get(k)
                # a value is always the one written for its key: no torn or crossed entries
                assert v is None or v == int(k[1:])
                if v is None:
                    c.put(k, int(k[1:]))
                if rng.random() < 0.01:
                    c.invalidate(k)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads very often so an unlocked cache would fail here
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert not errors
    s = c.stats()
    assert s["hits"] + s["misses"] == n_threads * n_ops
    assert len(c) <= 64


# -------------------------------------------------------------------------------------- ready wrappers


class CountingEmbedder:
    name = "fake-emb"

    def __init__(self) -> None:
        self.doc_calls: list[list[str]] = []
        self.query_calls: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.doc_calls.append(list(texts))
        return [[float(len(t)), 0.0] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.query_calls.append(text)
        return [float(len(text)), 1.0]


def test_cached_embedder_only_embeds_misses_in_one_batch():
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, max_entries=100)
    assert emb.name == "fake-emb"
    assert emb.embed_documents(["a", "bb"]) == [[1.0, 0.0], [2.0, 0.0]]
    assert emb.embed_documents(["bb", "ccc", "ccc", "a"]) == [[2.0, 0.0], [3.0, 0.0], [3.0, 0.0], [1.0, 0.0]]
    assert inner.doc_calls == [["a", "bb"], ["ccc"]]
    assert emb.embed_query("a") == [1.0, 1.0]  # queries are cached apart from documents
    assert emb.embed_query("a") == [1.0, 1.0]
    assert inner.query_calls == ["a"]
    vec = emb.embed_query("a")
    vec.append(99.0)  # callers get copies
    assert emb.embed_query("a") == [1.0, 1.0]
    with pytest.raises(ConfigError, match="needs an embedder with embed_documents"):
        CachedEmbedder(object())


class FakeIndex:
    def __init__(self) -> None:
        self.version = 1
        self.calls = 0

    def search(self, query, k=10, *, filters=None, access=None, weights=None, candidate_k=None):
        self.calls += 1
        groups = access.groups if access is not None else None
        return [SearchHit(f"{query}-{groups}", "d", "text", 1.0, metadata={"tags": ["x"]})]

    async def asearch(self, query, k=10, **kw):
        return self.search(query, k, **kw)


def test_cached_search_keys_on_scope_and_version_and_copies_hits():
    idx, rc = FakeIndex(), RagCache()
    hr = AccessScope(groups=["hr"], clearance=2)
    a = cached_search(idx, rc, "q", 5, access=hr, filters={"doc_type": "policy"})
    a[0].metadata["tags"].append("mutated")
    b = cached_search(
        idx, rc, "q", 5, access=AccessScope(groups=["hr", "hr"], clearance=2), filters={"doc_type": "policy"}
    )
    assert idx.calls == 1 and b[0].metadata["tags"] == ["x"]  # hit, and not poisoned by the mutation
    c = cached_search(
        idx, rc, "q", 5, access=AccessScope(groups=["eng"], clearance=2), filters={"doc_type": "policy"}
    )
    assert idx.calls == 2 and c[0].chunk_id == "q-['eng']"
    cached_search(idx, rc, "q", 5, access=hr, filters={"doc_type": "guide"})
    cached_search(idx, rc, "q", 6, access=hr, filters={"doc_type": "policy"})
    cached_search(idx, rc, "q", 5, access=hr, filters={"doc_type": "policy"}, extra={"rerank": False})
    assert idx.calls == 5
    idx.version = 2  # an ingest or delete
    cached_search(idx, rc, "q", 5, access=hr, filters={"doc_type": "policy"})
    assert idx.calls == 6
    assert rc.stats()["retrieval"]["hits"] == 1
    with pytest.raises(ConfigError, match=r"unknown arguments \['rerank'\]"):
        cached_search(idx, rc, "q", rerank=True)


async def test_async_cached_search():
    idx, rc = FakeIndex(), RagCache()
    await acached_search(idx, rc, "q", access=AccessScope(groups=["a"]))
    await acached_search(idx, rc, "q", access=AccessScope(groups=["a"]))
    assert idx.calls == 1


def test_cached_search_on_a_real_index_never_leaks_across_scopes_and_sees_deletes(make_index):
    index = make_index()
    rc = RagCache()
    hr = AccessScope(groups=["hr"], clearance=2)
    eng = AccessScope(groups=["eng"], clearance=2)
    q = "engineering salary bands review"
    assert "salary" in {h.doc_id for h in cached_search(index, rc, q, 3, access=hr)}
    assert "salary" not in {h.doc_id for h in cached_search(index, rc, q, 3, access=eng)}
    assert "salary" in {h.doc_id for h in cached_search(index, rc, q, 3, access=hr)}
    assert rc.stats()["retrieval"]["hits"] == 1
    index.delete_document("salary")
    assert "salary" not in {h.doc_id for h in cached_search(index, rc, q, 3, access=hr)}
