"""rerank and prune nodes: fusion, adaptive k, reranker fallback; dedup, budget, parents, freshness."""

from __future__ import annotations

import datetime as dt

import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.prune import drop_duplicates, fit_budget, prune
from ragroute.nodes.rerank import adaptive_k, interleave, rerank
from ragroute.runtime.providers import Providers, using
from ragroute.tools.errors import ProviderError
from ragroute.tools.freshness import apply_decay, decay_factor
from ragroute.tools.tokens import count_tokens

from tests.node_fakes import FailingReranker, FakeIndex, ReversingReranker


def hit(cid: str, score: float = 1.0, text: str | None = None, **meta) -> dict:
    return {
        "chunk_id": cid,
        "doc_id": cid.split("::")[0],
        "text": text or f"text of {cid}",
        "score": score,
        "metadata": meta,
        "parent_id": meta.get("parent_id"),
    }


def test_interleave_keeps_every_lists_best_first():
    merged = interleave([[hit("a"), hit("b")], [hit("x"), hit("a"), hit("y")]])
    assert [h["chunk_id"] for h in merged] == ["a", "x", "b", "y"]


def test_adaptive_k_stops_at_a_cliff_and_respects_bounds():
    assert adaptive_k([0.9, 0.88, 0.86, 0.2, 0.19], k_max=10)[0] == 3
    assert adaptive_k([0.9, 0.89, 0.88, 0.87, 0.86], k_max=3) == (3, "no cliff")
    assert adaptive_k([0.9, 0.1, 0.05], k_max=10)[0] == 2  # never below the minimum
    assert adaptive_k([], k_max=3)[0] == 0


def _state(route: str = "simple") -> dict:
    return {
        "question": "q",
        "route": route,
        "retrievals": [
            {"query": "q", "purpose": "original", "hits": [hit(f"d{i}::0", 1 - i * 0.01) for i in range(6)]}
        ],
    }


async def test_rerank_uses_the_configured_reranker():
    with using(Providers(reranker=ReversingReranker())):
        out = await rerank(_state(), Runtime(context=Context(reranker="maxsim", k_simple=3)))
    assert [h["chunk_id"] for h in out["documents"]][:1] == ["d5::0"]
    assert out["retrieved"][0] == "d0::0"  # before rerank
    assert out["k"] <= 3


async def test_rerank_failure_keeps_fused_order_and_records_it():
    broken = FailingReranker()
    with using(Providers(reranker=broken)):
        out = await rerank(_state(), Runtime(context=Context(reranker="maxsim", k_simple=3)))
        assert broken.calls == 1
        assert [h["chunk_id"] for h in out["documents"]] == ["d0::0", "d1::0", "d2::0"]
        assert "rerank (maxsim)" in out["degradations"][0] and "kept fused order" in out["degradations"][0]
        with pytest.raises(ProviderError):
            await rerank(_state(), Runtime(context=Context(reranker="maxsim", strict=True)))


def test_drop_duplicates_and_fit_budget():
    text = "the quick brown fox jumps over the lazy dog " * 5
    kept, n = drop_duplicates(
        [hit("a", text=text), hit("b", text=text + " again"), hit("c", text="other words here")]
    )
    assert [h["chunk_id"] for h in kept] == ["a", "c"] and n == 1
    budget = count_tokens(text) + 5
    fitted, used, dropped = fit_budget(kept, budget)
    assert [h["chunk_id"] for h in fitted] == ["a", "c"] and used <= budget and dropped == 0
    fitted, used, dropped = fit_budget(kept, count_tokens(text))
    assert [h["chunk_id"] for h in fitted] == ["a"] and dropped == count_tokens("other words here")


async def test_prune_expands_parents_within_budget_and_merges_siblings(tmp_path):
    parent_text = "Intro sentence. " + "Child one text. Child two text. " * 3
    index = FakeIndex([], parents={"doc::p0": parent_text})
    docs = [
        hit("doc::c0", text="Child one text.", parent_id="doc::p0"),
        hit("doc::c1", text="Child two text.", parent_id="doc::p0"),
        hit("other::c0", text="Unrelated other chunk."),
    ]
    with using(Providers(index=index)):
        out = await prune(
            {"documents": docs}, Runtime(context=Context(index_dir=str(tmp_path), token_budget=500))
        )
    assert [s["chunk_id"] for s in out["sources"]] == ["doc::c0", "other::c0"]
    assert out["sources"][0]["text"] == parent_text and out["sources"][0]["expanded"]
    assert [s["n"] for s in out["sources"]] == [1, 2]
    assert out["prune_stats"]["parents_expanded"] == 1
    with using(Providers(index=index)):
        tight = await prune(
            {"documents": docs}, Runtime(context=Context(index_dir=str(tmp_path), token_budget=12))
        )
    assert not any(s["expanded"] for s in tight["sources"])
    assert tight["prune_stats"]["tokens_kept"] <= 12 and tight["prune_stats"]["tokens_dropped"] > 0


async def test_prune_retry_takes_more_context(tmp_path):
    ranked = [hit(f"d{i}::0", text=f"distinct chunk number {i} about topic {i * 7}") for i in range(8)]
    ctx = Context(index_dir=str(tmp_path))
    with using(Providers(index=FakeIndex([]))):
        first = await prune({"documents": ranked[:2], "ranked": ranked}, Runtime(context=ctx))
        retry = await prune({"documents": ranked[:2], "ranked": ranked, "attempt": 1}, Runtime(context=ctx))
    assert len(first["sources"]) == 2 and len(retry["sources"]) == 5
    assert retry["prune_stats"]["budget"] == int(ctx.token_budget * 1.5)


def test_freshness_decay_is_off_by_default_and_prefers_recent_docs():
    today = dt.date(2026, 1, 1)
    assert decay_factor("2025-01-01", 365, today) == pytest.approx(0.5)
    assert decay_factor(None, 30, today) == 1.0
    hits = [
        hit("old", 1.0, doc_type="news", last_updated="2024-01-01"),
        hit("new", 0.8, doc_type="news", last_updated="2025-12-01"),
    ]
    assert apply_decay(hits, None) is hits
    decayed = apply_decay(hits, {"news": 90}, today)
    assert [h["chunk_id"] for h in decayed] == ["new", "old"]
    assert [h["chunk_id"] for h in apply_decay(hits, {"manual": 90}, today)] == ["old", "new"]


async def test_multihop_keeps_each_hops_best_evidence_within_k():
    hop1 = [hit(f"h1-{i}::0", 1 - i * 0.01) for i in range(10)]
    hop2 = [hit("h2-0::0", 0.9), hit("h2-1::0", 0.89)] + [hit(f"h2-{i}::0", 0.1) for i in range(2, 10)]
    state = {
        "question": "q",
        "route": "multihop",
        "retrievals": [{"query": "a", "hits": hop1}, {"query": "b", "hits": hop2}],
    }
    out = await rerank(state, Runtime(context=Context(k_expand=8, k_multihop=8)))
    ids = [h["chunk_id"] for h in out["documents"]]
    assert ids[:2] == ["h1-0::0", "h2-0::0"] and "h2-1::0" in ids
    assert not any(i.startswith("h2-") and i not in ("h2-0::0", "h2-1::0") for i in ids)  # hop 2 cliff
    assert out["k"] == len(ids) <= 8 and len(out["retrieved"]) == 20


async def test_rerank_depth_bounds_what_the_reranker_reorders():
    ctx = Context(reranker="maxsim", rerank_depth=3, k_simple=3, k_expand=6, k_multihop=6)
    with using(Providers(reranker=ReversingReranker())):
        out = await rerank({**_state(), "route": "expand"}, Runtime(context=ctx))
    order = [h["chunk_id"] for h in out["ranked"]]
    assert order == ["d2::0", "d1::0", "d0::0", "d3::0", "d4::0", "d5::0"]
    scores = [h["score"] for h in out["ranked"]]
    assert scores == sorted(scores, reverse=True)


async def test_reranker_timeout_falls_back_to_fused_order():
    import time

    class Slow:
        name = "slow"

        def rerank(self, query, hits, top_n=None):
            time.sleep(0.5)
            return list(reversed(hits))

    with using(Providers(reranker=Slow())):
        out = await rerank(_state(), Runtime(context=Context(reranker="maxsim", reranker_timeout_s=0.05)))
    assert [h["chunk_id"] for h in out["documents"]][0] == "d0::0"
    assert "TimeoutError" in out["degradations"][0]


async def test_multihop_puts_title_linked_evidence_first_without_growing_the_context():
    def titled(cid: str, title: str, text: str, score: float) -> dict:
        return {**hit(cid, score, text), "metadata": {"title": title}}

    q = "Which army did the namesake of the ship SS General von Steuben fight in?"
    hop1 = [titled("ship::0", "SS General von Steuben", "Named after Friedrich von Steuben, a general.", 0.9)]
    hop1 += [titled(f"a{i}::0", f"Liner {i}", "An ocean liner.", 0.8 - i * 0.01) for i in range(9)]
    hop2 = [titled(f"b{i}::0", f"Army {i}", "An army.", 0.7 - i * 0.01) for i in range(7)]
    hop2 += [titled("man::0", "Friedrich von Steuben", "He served in the Continental Army.", 0.6)]
    state = {"question": q, "route": "multihop", "retrievals": [{"hits": hop1}, {"hits": hop2}]}
    ctx = Context(k_expand=6, k_multihop=6)
    out = await rerank(state, Runtime(context=ctx))
    ids = [h["chunk_id"] for h in out["documents"]]
    assert ids[:2] == ["ship::0", "man::0"]  # named by the question, then linked from its text
    unlinked = [{**hop1[0], "text": "A German liner."}, *hop1[1:]]
    plain = await rerank(
        {**state, "question": "which army?", "retrievals": [{"hits": unlinked}, {"hits": hop2}]},
        Runtime(context=ctx),
    )
    assert "man::0" not in [h["chunk_id"] for h in plain["documents"]]  # rank 8 of hop 2: cut without links
    assert len(ids) == len(plain["documents"]) == 5  # the per-hop cuts [2, 3] set the size either way
    fallback = await rerank({**state, "question": "which army?"}, Runtime(context=ctx))
    got = [h["chunk_id"] for h in fallback["documents"]]
    assert got[:3] == ["ship::0", "b0::0", "man::0"]  # no anchor named: each hop's top, then its links
    assert out["ranked"][: len(ids)] == out["documents"]
