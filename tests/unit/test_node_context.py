"""Context validation, context_of from Runtime / configurable, and the citation/support tools."""

from __future__ import annotations

import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.runtime import providers
from ragroute.tools.errors import ConfigError
from ragroute.tools.faithfulness import answer_sentences, repair_citations, score_answer
from ragroute.tools.freshness import staleness_notes
from ragroute.tools.rerankers import MaxSimReranker, NoReranker
from ragroute.tools.sentences import split_sentences


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"reranker": "magic"}, "reranker='magic'"),
        ({"route": "zigzag"}, "route='zigzag'"),
        ({"k_simple": 0}, "k_simple=0"),
        ({"k_simple": 12}, "k bounds"),
        ({"llm": "gpt4"}, "provider:model"),
        ({"faithfulness_threshold": 2}, "faithfulness_threshold"),
        ({"weights": {"sparse": 1.0}}, "weights"),
        ({"user_groups": "eng"}, "user_groups"),
        ({"freshness_half_life_days": {"news": 0}}, "freshness_half_life_days"),
    ],
)
def test_invalid_values_name_the_value(kw, needle):
    with pytest.raises(ConfigError, match=None) as err:
        Context(**kw)
    assert needle in str(err.value)


def test_from_dict_rejects_unknown_keys_and_context_of_reads_every_source():
    with pytest.raises(ConfigError, match="unknown setting"):
        Context.from_dict({"top_k": 3})
    ctx = Context(k_simple=2)
    assert context_of(Runtime(context=ctx)) is ctx
    assert context_of(Runtime(context={"k_simple": 2})).k_simple == 2
    from_config = context_of({"configurable": {"llm": "openai:gpt-4o-mini", "thread_id": "t1"}})
    assert from_config.llm == "openai:gpt-4o-mini"
    assert context_of(Runtime(context=None)) == Context()  # outside a run: defaults
    assert Context(reranker="cross-encoder:/models/ce").reranker.startswith("cross-encoder:")


def test_bound_reranker_serves_every_name_but_none_and_auto_resolves_offline(monkeypatch):
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    mine = NoReranker()
    with providers.using(providers.Providers(reranker=mine)):
        assert providers.reranker("auto") is mine and providers.reranker("cohere") is mine
        assert providers.reranker("none") is not mine
    assert providers.reranker("none") is not mine
    with pytest.raises(ConfigError, match="reranker='mine' is unknown"):
        Context(reranker="mine")  # only the known names: objects are passed, not registered
    assert providers.resolve_reranker_name("auto") == providers.resolve_reranker_name("local")
    monkeypatch.setenv("COHERE_API_KEY", "k")
    assert providers.resolve_reranker_name("auto") == "cohere"


def test_cost_table():
    assert providers.cost_usd("openai:gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert providers.cost_usd("openai:local-model", 10, 10) == 0.0
    assert providers.cost_usd(None, 10, 10) == 0.0


def test_sentence_split_skips_headings_and_bullets():
    text = "# Title\n\n- First point is here.\n- Second one. Third sentence follows.\n|---|---|"
    assert split_sentences(text) == ["First point is here.", "Second one.", "Third sentence follows."]


def test_citation_parsing_moves_markers_before_the_full_stop():
    assert answer_sentences("Tokens expire. [1][2] Cats sleep [3].") == [
        ("Tokens expire [1][2].", [1, 2]),
        ("Cats sleep [3].", [3]),
    ]


def test_support_scores_copied_claims_high_and_invented_claims_low():
    embed = providers.embedder()
    sources = [{"n": 1, "text": "Access tokens expire after 15 minutes."}]
    good, bad = score_answer(
        "Access tokens expire after 15 minutes [1]. Tokens use quantum encryption [1].", sources, embed
    )
    assert good.support > 0.9 and bad.support < 0.5
    text, cited, notes = repair_citations("Access tokens expire after 15 minutes.", sources, embed)
    assert text == "Access tokens expire after 15 minutes [1]." and cited == [1] and notes


def test_staleness_notes_flag_old_and_multi_version_sources():
    import datetime as dt

    sources = [
        {
            "n": 1,
            "metadata": {
                "title": "Release notes 2.9.1",
                "version": "2.9.1",
                "doc_type": "rn",
                "last_updated": "2026-03-20",
            },
        },
        {
            "n": 2,
            "metadata": {
                "title": "Release notes 2.10.0",
                "version": "2.10.0",
                "doc_type": "rn",
                "last_updated": "2026-09-01",
            },
        },
    ]
    notes = staleness_notes(sources, [1], 1000, today=dt.date(2026, 10, 1))
    assert notes == [
        "Note: source [1] is version 2.9.1, last updated 2026-03-20; a newer version (2.10.0) exists."
    ]
    assert staleness_notes(sources[:1], [1], 1000, today=dt.date(2026, 10, 1)) == []
    assert (
        "newer version (2.10.0)"
        in staleness_notes(sources[:1], [1], 1000, today=dt.date(2026, 10, 1), others=sources[1:])[0]
    )
    # the newest version, and the only one, are current however old (more in test_freshness.py)
    assert staleness_notes(sources, [2], 1000, today=dt.date(2026, 10, 1)) == []
    assert staleness_notes(sources[:1], [1], 30, today=dt.date(2026, 10, 1)) == []


def test_maxsim_prefers_the_chunk_whose_best_sentence_answers():
    embed = providers.embedder()
    hits = [
        {
            "chunk_id": "a",
            "score": 0.5,
            "text": "Cats are popular pets. They sleep a lot. Dogs bark at night.",
        },
        {"chunk_id": "b", "score": 0.5, "text": "The office is in Berlin. Refresh tokens last thirty days."},
    ]
    out = MaxSimReranker(embed, alpha=0.3).rerank("how long do refresh tokens last", hits)
    assert [h["chunk_id"] for h in out] == ["b", "a"] and out[0]["rerank_score"] >= out[1]["rerank_score"]
    with pytest.raises(ValueError):
        MaxSimReranker(embed, alpha=2)


def test_cohere_reranker_maps_results_and_wraps_errors():
    from types import SimpleNamespace

    from ragroute.tools.errors import ProviderError
    from ragroute.tools.rerankers import CohereReranker

    class Client:
        def __init__(self, fail: bool) -> None:
            self.fail = fail
            self.seen: dict = {}

        def rerank(self, **kw):
            self.seen = kw
            if self.fail:
                raise TimeoutError("read timeout")
            return SimpleNamespace(
                results=[
                    SimpleNamespace(index=1, relevance_score=0.9),
                    SimpleNamespace(index=0, relevance_score=0.2),
                ]
            )

    reranker = CohereReranker(api_key="test-key")
    reranker.client = Client(fail=False)
    hits = [{"chunk_id": "a", "text": "alpha"}, {"chunk_id": "b", "text": "beta"}]
    out = reranker.rerank("q", hits)
    assert [h["chunk_id"] for h in out] == ["b", "a"] and out[0]["rerank_score"] == 0.9
    assert reranker.client.seen["model"] == "rerank-v3.5" and reranker.client.seen["documents"] == [
        "alpha",
        "beta",
    ]
    reranker.client = Client(fail=True)
    with pytest.raises(ProviderError, match="cohere: rerank failed"):
        reranker.rerank("q", hits)


async def test_missing_cross_encoder_directory_degrades_to_fused_order():
    from ragroute.nodes.rerank import rerank

    state = {
        "question": "q",
        "route": "simple",
        "retrievals": [
            {
                "query": "q",
                "hits": [{"chunk_id": f"c{i}", "score": 1 - i / 10, "text": "t"} for i in range(4)],
            }
        ],
    }
    out = await rerank(state, Runtime(context=Context(reranker="cross-encoder:/nonexistent/model")))
    assert out["documents"][0]["chunk_id"] == "c0"
    assert "does not exist" in out["degradations"][0]
