"""The caches as the query path uses them: retrieval hits and answers are served again on a repeat, never
across access scopes, never after an ingest or delete (also by another instance of the same index), and
answers expire after the run's TTL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ragroute.api import aask
from ragroute.runtime import caching, embedding_cache, providers
from ragroute.runtime.retrieval import search
from ragroute.tools.cache import RagCache
from ragroute.tools.types import AccessScope, SearchHit

from tests.conftest import corpus_batch
from tests.node_fakes import FailingReranker, ReversingReranker, ScriptedChatModel
from tests.unit import test_tracing

langfuse_memory = test_tracing.langfuse_memory  # spans in memory (fixture shared with test_tracing)

Q_SALARY = "When are engineering salary bands reviewed?"
Q_TOKENS = "How long do refresh tokens last?"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def fresh_cache(clock: Clock) -> Any:
    cache = caching.set_cache(RagCache(timer=clock, response_ttl_s=24 * 3600.0))
    yield cache
    caching.set_cache(None)


class Counting:
    """Counts the real index's search calls (what a cache hit saves)."""

    def __init__(self, index: Any) -> None:
        self.index, self.calls = index, 0

    def __call__(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        return self.index.__class__.search(self.index, *args, **kw)


@pytest.fixture
def setup(make_index: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, Counting]]:
    """A counted real index, bound for the whole test (every search and ask() of the test reads it)."""
    index = make_index()
    counter = Counting(index)
    monkeypatch.setattr(index, "search", counter)
    with providers.using(providers.Providers(index=index)):
        yield index, str(index.config.path), counter


def ctx_for(path: str, **kw: Any) -> Any:
    from ragroute.context import Context

    return Context(index_dir=path, **kw)


def doc_ids(hits: list[dict]) -> set[str]:
    return {h["doc_id"] for h in hits}


class FakeIndex:
    """An index whose hits name the scope and filters they were computed for."""

    def __init__(self) -> None:
        self.version = 1
        self.calls = 0

    def search(self, query, k=10, *, filters=None, access=None, weights=None, candidate_k=None):
        self.calls += 1
        groups = access.groups if access is not None else None
        return [
            SearchHit(f"{query}-{groups}-{filters}-{i}", "d", "text", 1.0 - i / 100, metadata={"tags": ["x"]})
            for i in range(k)
        ]


def cached(index: Any, k: int = 5, **kw: Any) -> list[Any]:
    args: dict[str, Any] = {"filters": None, "access": None, "weights": None, "candidate_k": 5, **kw}
    return caching.search(index, "q", k, **args)


def test_search_key_holds_scope_filters_weights_candidate_k_and_version() -> None:
    idx = FakeIndex()
    hr = AccessScope(groups=["hr"], clearance=2)
    a = cached(idx, access=hr, filters={"doc_type": "policy"})
    a[0].metadata["tags"].append("mutated")
    # the same scope spelled differently is the same entry, and a caller's mutation did not reach it
    b = cached(idx, access=AccessScope(groups=["hr", "hr"], clearance=2), filters={"doc_type": "policy"})
    assert (
        idx.calls == 1
        and b[0].metadata["tags"] == ["x"]
        and b == cached(idx, access=hr, filters={"doc_type": "policy"})
    )
    c = cached(idx, access=AccessScope(groups=["eng"], clearance=2), filters={"doc_type": "policy"})
    assert idx.calls == 2 and c[0].chunk_id.startswith("q-['eng']")
    cached(idx, access=hr, filters={"doc_type": "guide"})
    cached(idx, access=hr, filters={"doc_type": "policy"}, weights={"dense": 1.0, "bm25": 0.0})
    cached(idx, access=hr, filters={"doc_type": "policy"}, candidate_k=6)
    cached(idx, access=None, filters={"doc_type": "policy"})  # unrestricted is a scope of its own
    assert idx.calls == 6
    idx.version = 2  # an ingest or delete
    cached(idx, access=hr, filters={"doc_type": "policy"})
    assert idx.calls == 7
    assert caching.rag_cache().retrieval.stats()["hits"] == 2


def test_search_without_an_index_version_or_switched_off_is_not_cached() -> None:
    idx = FakeIndex()
    cached(idx, enabled=False)
    cached(idx, enabled=False)
    idx.version = None  # type: ignore[assignment]
    cached(idx)
    cached(idx)
    assert idx.calls == 4 and len(caching.rag_cache().retrieval) == 0


def test_repeat_is_a_hit_and_a_smaller_k_is_served_as_the_prefix(setup: Any) -> None:
    index, path, counter = setup
    ctx = ctx_for(path)
    first = search(ctx, Q_TOKENS, ctx.candidate_k)
    again = search(ctx, Q_TOKENS, ctx.candidate_k)
    probe = search(ctx, Q_TOKENS, 3)
    assert counter.calls == 1 and again == first
    direct = index.__class__.search(index, Q_TOKENS, 3, candidate_k=ctx.candidate_k)
    assert [h["chunk_id"] for h in probe] == [h.chunk_id for h in direct]
    assert caching.rag_cache().retrieval.stats()["hits"] == 2


def test_cached_hits_cannot_be_poisoned_by_a_caller(setup: Any) -> None:
    _, path, _ = setup
    ctx = ctx_for(path)
    first = search(ctx, Q_TOKENS, 5)
    first[0]["text"] = "poisoned"
    first[0]["metadata"]["access_groups"] = []
    assert search(ctx, Q_TOKENS, 5)[0]["text"] != "poisoned"


def test_scopes_never_share_an_entry(setup: Any) -> None:
    _, path, counter = setup
    hr = ctx_for(path, user_groups=["hr"], clearance=2)
    assert "salary" in doc_ids(search(hr, Q_SALARY, 5))
    for other in (ctx_for(path, user_groups=[], clearance=0), ctx_for(path, user_groups=["hr"], clearance=1)):
        assert "salary" not in doc_ids(search(other, Q_SALARY, 5))
    assert counter.calls == 3  # every scope computed its own hits
    # the unrestricted caller is yet another scope; no groups at all is the public scope, cached above
    assert "salary" in doc_ids(search(ctx_for(path, all_access=True), Q_SALARY, 5)) and counter.calls == 4
    assert "salary" not in doc_ids(search(ctx_for(path), Q_SALARY, 5)) and counter.calls == 4


def test_filters_are_part_of_the_key(setup: Any) -> None:
    _, path, counter = setup
    plain = search(ctx_for(path), Q_TOKENS, 5)
    legacy = search(ctx_for(path, filters={"version": "2.9.1"}), Q_TOKENS, 5)
    assert counter.calls == 2 and doc_ids(legacy) == {"auth-old"} != doc_ids(plain)


def test_ingest_and_delete_invalidate(setup: Any) -> None:
    index, path, counter = setup
    ctx = ctx_for(path)
    assert "tokens-faq" not in doc_ids(search(ctx, Q_TOKENS, 10))
    index.upsert_documents(
        corpus_batch([("tokens-faq", "Token FAQ", "Refresh tokens last 30 days; renew them early.", {})])
    )
    assert "tokens-faq" in doc_ids(search(ctx, Q_TOKENS, 10)) and counter.calls == 2
    assert index.delete_document("tokens-faq")
    assert "tokens-faq" not in doc_ids(search(ctx, Q_TOKENS, 10)) and counter.calls == 3


def test_a_write_through_another_instance_invalidates(setup: Any, embedder: Any) -> None:
    """The key reads the version SQLite holds, not a number this instance remembers."""
    from ragroute.tools.index import HybridIndex, IndexConfig

    index, path, counter = setup
    ctx = ctx_for(path)
    assert "auth" in doc_ids(search(ctx, Q_TOKENS, 10))
    other = HybridIndex(IndexConfig(path=path), embedder=embedder)
    try:
        assert other.delete_document("auth")
    finally:
        other.close()
    assert "auth" not in doc_ids(search(ctx, Q_TOKENS, 10)) and counter.calls == 2


def test_cache_off_always_searches(setup: Any) -> None:
    _, path, counter = setup
    ctx = ctx_for(path, cache=False)
    search(ctx, Q_TOKENS, 5)
    search(ctx, Q_TOKENS, 5)
    assert counter.calls == 2


async def test_answer_cache_hit_miss_and_report(setup: Any) -> None:
    index, path, counter = setup
    first = await aask(Q_TOKENS, index_dir=path)
    # classify's probe and the retrieve node share one search of the question
    assert first["cache"] == {"response": "miss", "retrieval_hits": 1, "retrieval_misses": 1}
    calls = counter.calls
    second = await aask(Q_TOKENS, index_dir=path)
    assert second["cache"]["response"] == "hit" and counter.calls == calls
    assert second["answer"] == first["answer"] and second["citations"] == first["citations"]
    off = await aask(Q_TOKENS, index_dir=path, cache=False)
    assert off["cache"]["response"] == "off" and counter.calls > calls
    assert index.delete_document("auth")
    after = await aask(Q_TOKENS, index_dir=path)
    assert after["cache"]["response"] == "miss"
    assert "auth" not in {c["doc_id"] for c in after["citations"]}


async def test_cached_answer_never_reaches_another_scope(setup: Any) -> None:
    _, path, _ = setup
    hr = await aask(Q_SALARY, index_dir=path, user_groups=["hr"], clearance=2)
    assert "salary" in {c["doc_id"] for c in hr["citations"]}
    for scope in ({"user_groups": []}, {"user_groups": ["hr"], "clearance": 1}, {"clearance": 2}):
        out = await aask(Q_SALARY, index_dir=path, **scope)
        assert out["cache"]["response"] == "miss", scope
        assert "salary" not in {c["doc_id"] for c in out["citations"]}
        assert "April" not in out["answer"]


async def test_settings_change_the_key(setup: Any) -> None:
    _, path, _ = setup
    await aask(Q_TOKENS, index_dir=path)
    for change in ({"token_budget": 500}, {"route": "expand"}, {"filters": {"doc_type": "technical"}}):
        assert (await aask(Q_TOKENS, index_dir=path, **change))["cache"]["response"] == "miss", change
    # tracing ids in `extra` do not change an answer
    assert (await aask(Q_TOKENS, index_dir=path, extra={"session_id": "s1"}))["cache"]["response"] == "hit"


async def test_answer_expires_after_ttl(setup: Any, clock: Clock) -> None:
    _, path, _ = setup
    await aask(Q_TOKENS, index_dir=path, cache_ttl_s=5)
    clock.now += 4
    assert (await aask(Q_TOKENS, index_dir=path, cache_ttl_s=5))["cache"]["response"] == "hit"
    clock.now += 2
    assert (await aask(Q_TOKENS, index_dir=path, cache_ttl_s=5))["cache"]["response"] == "miss"


async def test_degraded_answers_are_not_cached(setup: Any) -> None:
    index, path, _ = setup
    broken = providers.Providers(index=index, reranker=FailingReranker())
    for _ in range(2):
        out = await aask(Q_TOKENS, index_dir=path, providers=broken)
        assert out["degradations"] and out["cache"]["response"] == "miss"


def test_bad_cache_settings_are_clear_errors() -> None:
    from ragroute.context import Context
    from ragroute.tools.errors import ConfigError

    with pytest.raises(ConfigError, match="cache_ttl_s"):
        Context(cache_ttl_s=0)
    with pytest.raises(ConfigError, match="cache="):
        Context(cache="yes")  # type: ignore[arg-type]


def test_embedder_serves_repeats_from_the_lru_level() -> None:
    embed = providers.embedder()
    level = caching.rag_cache().embeddings
    assert embedding_cache.level() is level  # the one vector cache, installed by set_cache
    first = embed(["alpha text", "beta text", "alpha text"])
    assert level.stats()["misses"] == 2 and len(level) == 2
    again = embed(["beta text", "alpha text"])
    assert level.stats()["hits"] == 2
    assert (again[1] == first[0]).all() and (again[0] == first[1]).all()
    fresh = caching.set_cache(None)  # a new process-wide cache starts with no vectors
    assert embedding_cache.level() is fresh.embeddings
    embed(["alpha text"])
    assert fresh.embeddings.stats()["misses"] == 1 and len(fresh.embeddings) == 1


async def test_trace_root_reports_the_runs_cache_counts(setup: Any, langfuse_memory: Any) -> None:
    import json

    client, exporter, _ = langfuse_memory
    _, path, _ = setup
    await aask(Q_TOKENS, index_dir=path)
    client.flush()
    root = next(s for s in exporter.get_finished_spans() if s.name == "ragroute")
    cache = json.loads(root.attributes["langfuse.observation.metadata.cache"])
    assert cache == {"retrieval_hits": 1, "retrieval_misses": 1}


async def test_an_answer_is_never_served_to_a_run_with_another_bound_model_or_reranker(setup: Any) -> None:
    index, _, _ = setup

    def model(answer: str) -> ScriptedChatModel:
        return ScriptedChatModel(script=[("For each numbered answer sentence", "[1.0]"), ("Answer:", answer)])

    one = providers.Providers(index=index, chat_model=model("Access tokens expire after 15 minutes [1]."))
    two = providers.Providers(index=index, chat_model=model("Access tokens are valid for 15 minutes [1]."))
    first = await aask(Q_TOKENS, providers=one, llm="fake:same-name", route="simple")
    assert first["cache"]["response"] == "miss" and first["answer"].startswith("Access tokens expire")
    again = await aask(Q_TOKENS, providers=one, llm="fake:same-name", route="simple")
    assert again["cache"]["response"] == "hit" and again["answer"] == first["answer"]
    other = await aask(Q_TOKENS, providers=two, llm="fake:same-name", route="simple")
    assert other["cache"]["response"] == "miss" and other["answer"].startswith("Access tokens are valid")

    mine, theirs = ReversingReranker(), ReversingReranker()
    ranked = await aask(Q_TOKENS, providers=providers.Providers(index=index, reranker=mine))
    assert ranked["cache"]["response"] == "miss"
    repeat = await aask(Q_TOKENS, providers=providers.Providers(index=index, reranker=mine))
    assert repeat["cache"]["response"] == "hit"
    swapped = await aask(Q_TOKENS, providers=providers.Providers(index=index, reranker=theirs))
    assert swapped["cache"]["response"] == "miss"
    # the run without a bound reranker (the fixture binds only the index) builds its own: another answer
    assert (await aask(Q_TOKENS))["cache"]["response"] == "miss"
