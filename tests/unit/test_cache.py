"""Cache keys, the LRU/TTL cache levels (cachetools underneath), their stats and thread safety.

How the query path uses them (index version and access scope in every key) is tested in
test_caching_wired.py and tests/security/test_access_control.py."""

from __future__ import annotations

import random
import sys
import threading
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ragroute.tools.cache import CacheLevel, RagCache, cache_key, embedding_key, scope_part
from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.types import AccessScope


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
    c: CacheLevel[int] = CacheLevel(3)
    for k in "abc":
        c.put(k, ord(k))
    assert c.get("a") == ord("a")  # a becomes most recent: order b, c, a
    c.put("d", 4)  # evicts b
    assert "b" not in c and all(k in c for k in "cad")
    assert c.get("b") is None
    c.put("e", 5)  # evicts c
    assert "c" not in c and len(c) == 3
    s = c.stats()
    assert (s["hits"], s["misses"], s["evictions"], s["hit_rate"]) == (1, 1, 2, 0.5)
    assert (s["size"], s["max_entries"], s["ttl_s"]) == (3, 3, None)


def test_ttl_expiry_with_injected_timer():
    clock = FakeClock()
    c: CacheLevel[str] = CacheLevel(10, ttl_s=10, timer=clock)
    c.put("k", "v")
    clock.now += 9.99
    assert c.get("k") == "v"
    clock.now += 0.01
    assert c.get("k") is None
    assert "k" not in c and len(c) == 0
    s = c.stats()
    assert (s["expirations"], s["hits"], s["misses"], s["ttl_s"]) == (1, 1, 1, 10.0)


def test_ttl_level_still_evicts_least_recently_used_when_full():
    clock = FakeClock()
    c: CacheLevel[int] = CacheLevel(2, ttl_s=60, timer=clock)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1
    c.put("c", 3)  # evicts b, the least recently used
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3
    assert c.stats()["evictions"] == 1


def test_get_or_compute_calls_once():
    c: CacheLevel[int] = CacheLevel(4)
    calls = []
    for _ in range(3):
        assert c.get_or_compute("k", lambda: calls.append(1) or 42) == 42
    assert len(calls) == 1
    assert (c.stats()["hits"], c.stats()["misses"]) == (2, 1)


def test_invalidate_and_clear_keep_the_counters():
    c: CacheLevel[int] = CacheLevel(4)
    c.put("a", 1)
    c.put("b", 2)
    assert c.invalidate("a") and not c.invalidate("a")
    assert c.get("a") is None and c.get("b") == 2
    c.clear()
    assert len(c) == 0 and c.get("b", "gone") == "gone"
    assert (c.stats()["hits"], c.stats()["misses"], c.stats()["evictions"]) == (1, 2, 0)


def test_a_falsy_value_is_a_hit():
    c: CacheLevel[int] = CacheLevel(4)
    c.put("zero", 0)
    assert c.get("zero", "missing") == 0 and c.stats()["hits"] == 1


def test_invalid_configuration():
    with pytest.raises(ConfigError, match="max_entries must be an int >= 1, got 0"):
        CacheLevel(0)
    with pytest.raises(ConfigError, match="ttl_s must be a number > 0"):
        CacheLevel(10, ttl_s=-1)
    with pytest.raises(ConfigError, match="unknown cache level 'answers'; options: embeddings"):
        RagCache().level("answers")


# ------------------------------------------------------------------------------------------ multi-level


def test_scopes_never_share_a_response_entry():
    rc = RagCache()
    hr = AccessScope(groups=["hr"], clearance=1)
    eng = AccessScope(groups=["eng"], clearance=1)
    k_hr = cache_key(query="salary bands", access=hr, index_version=1)
    rc.responses.put(k_hr, {"answer": "HR-only text"})
    k_eng = cache_key(query="salary bands", access=eng, index_version=1)
    assert rc.responses.get(k_eng) is None
    k_public = cache_key(query="salary bands", access=AccessScope(groups=[], clearance=0), index_version=1)
    assert rc.responses.get(k_public) is None
    assert rc.responses.get(k_hr) == {"answer": "HR-only text"}


def test_levels_are_separate_and_report_their_stats():
    rc = RagCache()
    ek = embedding_key("minilm", "hello")
    assert ek == embedding_key("minilm", "hello") != embedding_key("other-model", "hello")
    rc.embeddings.put(ek, [0.1, 0.2])
    rc.retrieval.put("k", ["c1"])
    assert rc.embeddings.get(ek) == [0.1, 0.2]
    assert rc.responses.get("k") is None  # one level's entry is not another's
    s = rc.stats()
    assert set(s) == {"embeddings", "retrieval", "responses"}
    assert s["embeddings"]["hits"] == 1 and s["responses"]["misses"] == 1 and s["retrieval"]["size"] == 1
    assert s["embeddings"]["ttl_s"] is None and s["retrieval"]["ttl_s"] == 300.0
    rc.clear()
    assert len(rc.embeddings) == len(rc.retrieval) == 0


def test_response_ttl_is_separate_from_retrieval_ttl():
    clock = FakeClock()
    rc = RagCache(retrieval_ttl_s=5, response_ttl_s=60, timer=clock)
    rc.retrieval.put("k", 1)
    rc.responses.put("k", 2)
    clock.now += 10
    assert rc.retrieval.get("k") is None
    assert rc.responses.get("k") == 2


# ------------------------------------------------------------------------------------------- threading


@pytest.mark.parametrize("ttl_s", [None, 3600])
def test_concurrent_use_from_threads_is_safe(ttl_s):
    c: CacheLevel[int] = CacheLevel(64, ttl_s=ttl_s)
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
