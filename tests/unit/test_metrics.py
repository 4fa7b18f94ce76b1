"""Metric functions on small cases whose expected values are worked out by hand from the formulas."""

from __future__ import annotations

import json
import math
import random

import pytest
from ragroute.evals import metrics as m
from ragroute.tools.errors import ConfigError, InputError

# qrels with graded relevance: d1 is the best document, d3 marginal, d9 judged non-relevant
GRADED = {"d1": 3, "d2": 2, "d3": 1, "d9": 0}
RUN = ["d3", "x1", "d1", "d9", "d2"]  # relevant at ranks 1, 3 and 5


def test_hit_recall_precision_mrr_by_hand():
    assert m.hit_at_k(RUN, GRADED, 1) == 1.0
    assert m.hit_at_k(["x1", "d9"], GRADED, 2) == 0.0  # grade 0 is not relevant
    # 3 relevant docs (d1, d2, d3); top-3 holds d3 and d1 -> 2/3
    assert m.recall_at_k(RUN, GRADED, 3) == pytest.approx(2 / 3)
    assert m.recall_at_k(RUN, GRADED, 5) == 1.0
    # P@4 = |{d3, d1}| / 4 ; P@10 divides by 10 even though the list has 5 entries
    assert m.precision_at_k(RUN, GRADED, 4) == 0.5
    assert m.precision_at_k(RUN, GRADED, 10) == pytest.approx(0.3)
    assert m.mrr_at_k(["x1", "x2", "d2"], GRADED, 10) == pytest.approx(1 / 3)
    assert m.mrr_at_k(["x1", "x2", "d2"], GRADED, 2) == 0.0
    assert m.recall_at_k(RUN, {}, 5) == 0.0


def test_ndcg_graded_by_hand():
    # DCG@3 of RUN: gains 1, 0, 3 at ranks 1..3 -> 1/log2(2) + 3/log2(4) = 1 + 1.5 = 2.5
    # ideal@3: grades 3, 2, 1 -> 3/1 + 2/log2(3) + 1/2 = 3 + 1.2618595 + 0.5 = 4.7618595
    assert m.ndcg_at_k(RUN, GRADED, 3) == pytest.approx(2.5 / 4.7618595, abs=1e-6)
    assert m.ndcg_at_k(RUN, GRADED, 3) == pytest.approx(0.525005, abs=1e-6)
    # @5 adds d2 (gain 2) at rank 5: 2/log2(6) = 0.7737056 -> DCG 3.2737056; ideal@5 is still 4.7618595
    assert m.ndcg_at_k(RUN, GRADED, 5) == pytest.approx(3.2737056 / 4.7618595, abs=1e-6)
    # perfect order scores 1, nothing relevant scores 0
    assert m.ndcg_at_k(["d1", "d2", "d3"], GRADED, 3) == pytest.approx(1.0)
    assert m.ndcg_at_k(["x"], GRADED, 10) == 0.0
    assert m.ndcg_at_k(["d1"], {"d1": 0}, 10) == 0.0
    # binary, one relevant at rank 2: 1/log2(3) = 0.6309298
    assert m.ndcg_at_k(["a", "b"], {"b": 1}, 10) == pytest.approx(0.6309298, abs=1e-6)


def test_ranking_metrics_dedupes_chunks_of_one_doc():
    # two chunks of d9 then d1: d1 is at document rank 2, not 3
    out = m.ranking_metrics(["d9", "d9", "d1"], {"d1": 1}, [1, 2])
    assert out["hit@1"] == 0.0 and out["hit@2"] == 1.0
    assert out["mrr@2"] == 0.5
    assert set(out) == {f"{n}@{k}" for n in ("hit", "recall", "precision", "mrr", "ndcg") for k in (1, 2)}


def test_bad_k_is_config_error():
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        m.ndcg_at_k(RUN, GRADED, 0)


def _reference_ndcg(run_scores: dict[str, float], qrels: dict[str, int], k: int) -> float:
    """trec_eval's ndcg_cut written independently: sort by score desc (ties: doc id desc), linear gain."""
    ordered = sorted(run_scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:k]
    dcg = 0.0
    for i, (doc, _) in enumerate(ordered):
        rel = qrels.get(doc, 0)
        if rel > 0:
            dcg += rel / math.log2(i + 2)
    ideal_rels = sorted([r for r in qrels.values() if r > 0], reverse=True)[:k]
    idcg = 0.0
    for i, rel in enumerate(ideal_rels):
        idcg += rel / math.log2(i + 2)
    return dcg / idcg if idcg else 0.0


@pytest.mark.parametrize("seed", range(25))
def test_ndcg_parity_with_reference(seed):
    rng = random.Random(seed)
    docs = [f"doc{i}" for i in range(rng.randint(5, 40))]
    qrels = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, min(8, len(docs))))}
    scores = {d: rng.random() for d in rng.sample(docs, rng.randint(1, len(docs)))}
    ranked = [d for d, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]
    for k in (1, 3, 5, 10, 100):
        assert m.ndcg_at_k(ranked, qrels, k) == pytest.approx(_reference_ndcg(scores, qrels, k), abs=1e-12)


def test_all_found():
    assert m.all_found(["a", "b", "c"], ["a", "c"]) == 1.0
    assert m.all_found(["a", "b"], ["a", "c"]) == 0.0
    assert m.all_found(["a"], []) == 0.0


def test_answer_f1_and_recall_by_hand():
    assert m.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    # pred tokens: paris france (2); gold: paris (1); common 1 -> P=1/2, R=1 -> F1=2/3
    assert m.token_f1("Paris, France.", "Paris") == pytest.approx(2 / 3)
    assert m.token_recall("Paris, France.", "Paris") == 1.0
    # max over golds: vs "in france" tokens [in, france]: common 1, P=1/2, R=1/2 -> F1 0.5; vs "paris" 2/3
    assert m.token_f1("Paris, France.", ["in France", "Paris"]) == pytest.approx(2 / 3)
    # "a" is an article and is dropped, so pred "a a b" normalises to [b]
    assert m.token_f1("a a b", "b") == 1.0
    # repeated tokens are clipped: pred [x, x, y], gold [x, y, z]: common = 2 -> P=2/3 R=2/3 F1=2/3
    assert m.token_f1("x x y", "x y z") == pytest.approx(2 / 3)
    assert m.token_f1("nothing shared", "other words") == 0.0
    assert m.exact_match("the Answer.", ["answer"]) == 1.0
    with pytest.raises(InputError):
        m.token_f1("x", [])


def test_citation_precision_recall_by_hand():
    # cited {a, b, c}, gold {a, d}: 1 shared -> precision 1/3, recall 1/2
    p, r = m.citation_precision_recall(["a", "b", "c", "a"], ["a", "d"])
    assert p == pytest.approx(1 / 3) and r == 0.5
    assert m.citation_precision_recall([], ["a"]) == (None, 0.0)
    assert m.citation_precision_recall(["a"], []) == (0.0, None)


def test_overlap_support_and_citation_accuracy_by_hand():
    passage = "Aspirin reduces the risk of heart attacks in adults."
    # content tokens of the sentence: aspirin, reduces, heart, attacks -> all in passage -> 1.0
    assert m.overlap_support("Aspirin reduces heart attacks [1].", passage) == 1.0
    # aspirin, cures, cancer: only aspirin is in the passage -> 1/3
    assert m.overlap_support("Aspirin cures cancer.", passage) == pytest.approx(1 / 3)
    answer = "Aspirin reduces heart attacks [1][2]. Aspirin cures cancer [1]. Unsupported filler."
    passages = {1: passage, 2: "Completely different text about volcanoes."}
    # pairs: (s1,1) ok, (s1,2) not, (s2,1) 1/3 < 0.5 not; citation [3] would be missing -> 1/3
    assert m.citation_accuracy(answer, passages, support=m.overlap_support) == pytest.approx(1 / 3)
    missing = m.citation_accuracy("Aspirin reduces heart attacks [3].", passages, support=m.overlap_support)
    assert missing == 0.0
    assert m.citation_accuracy("No citations here.", passages) is None


def test_sentence_split_keeps_trailing_markers():
    parts = m.cited_sentences("First claim. [1] Second claim [2]. Third.")
    assert parts == [("First claim. [1]", [1]), ("Second claim [2].", [2]), ("Third.", [])]


def test_abstention_metrics_by_hand():
    records = [
        {"answerable": False, "abstained": True},
        {"answerable": False, "abstained": False},
        {"answerable": False, "abstained": True},
        {"answerable": True, "abstained": False},
        {"answerable": True, "abstained": True},
    ]
    out = m.abstention_metrics(records)
    assert out["abstain_accuracy"] == pytest.approx(2 / 3)
    assert out["answer_rate"] == 0.5
    assert out["decision_accuracy"] == pytest.approx(3 / 5)  # 2 correct abstentions + 1 answered
    assert out["idk_rate"] == pytest.approx(3 / 5)
    assert m.abstention_metrics([{"answerable": True, "abstained": False}])["abstain_accuracy"] is None


def test_idk_detection():
    assert m.is_idk("I don't know based on the provided sources.")
    assert m.is_idk("The context does not contain that.")
    assert m.is_idk("", abstained=False)
    assert m.is_idk("Paris", abstained=True)
    assert not m.is_idk("Paris is the capital of France [1].")


def test_percentile_linear_interpolation_by_hand():
    data = [10, 20, 30, 40]
    # position = (n-1) * q/100: p50 -> 1.5 -> 20 + 0.5*10 = 25; p95 -> 2.85 -> 30 + 0.85*10 = 38.5
    assert m.percentile(data, 50) == 25.0
    assert m.percentile(data, 95) == pytest.approx(38.5)
    assert m.percentile(data, 99) == pytest.approx(39.7)
    assert m.percentile(data, 0) == 10 and m.percentile(data, 100) == 40
    assert m.percentile([7], 95) == 7
    assert m.percentile([], 50) is None
    with pytest.raises(ConfigError):
        m.percentile(data, 101)
    summary = m.latency_summary([40, 10, 30, 20])
    assert summary["latency_p50_ms"] == 25.0 and summary["latency_mean_ms"] == 25.0


def test_cost_from_price_table_by_hand(tmp_path):
    prices = {"openai:test": {"prompt": 0.5, "completion": 1.5}}
    # 2000 prompt tokens * 0.5/1K + 400 completion * 1.5/1K = 1.0 + 0.6
    assert m.query_cost("openai:test", {"prompt_tokens": 2000, "completion_tokens": 400}, prices) == 1.6
    assert m.query_cost("extractive-offline", {"prompt_tokens": 999}, prices) == 0.0
    assert m.query_cost("unknown:model", {"cost_usd": 0.02}, prices) == 0.02
    assert m.query_cost("unknown:model", {"prompt_tokens": 5}, prices) is None
    # a table keyed by bare model name also prices "provider:model" specs: 500 * 0.5/1K = 0.25
    assert m.query_cost("someprovider:test", {"prompt_tokens": 500}, {"test": prices["openai:test"]}) == 0.25
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"_note": "x", "local:llm": {"prompt": 0.001, "completion": 0.002}}))
    loaded = m.load_prices(table)
    assert loaded["local:llm"] == {"prompt": 0.001, "completion": 0.002}
    assert loaded["extractive-offline"]["prompt"] == 0.0
    table.write_text(json.dumps({"bad": {"prompt": 1}}))
    with pytest.raises(InputError, match="'bad' needs 'prompt' and 'completion'"):
        m.load_prices(table)
    table.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        m.load_prices(table)


def test_mean_ignores_none():
    assert m.mean([1, None, 0]) == 0.5
    assert m.mean([None]) is None
