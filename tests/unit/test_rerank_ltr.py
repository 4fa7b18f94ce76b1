"""The learned (LTR) reranker: features from the hits' own ranks and scores, the shipped model's file,
and the reranker ordering by the model's score; numpy only at query time."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ragroute.runtime import providers
from ragroute.tools import rerank_ltr as ltr
from ragroute.tools.learned import LogisticModel
from ragroute.tools.rerankers import LtrReranker, best_sentence_similarity


def _hit(cid: str, title: str, text: str, score: float, dense: int | None, bm25: int | None) -> dict:
    return {
        "chunk_id": cid,
        "doc_id": cid,
        "title": title,
        "text": text,
        "score": score,
        "ranks": {"dense": dense, "bm25": bm25},
        "source_scores": {
            k: v for k, v in (("dense", 0.5 if dense else None), ("bm25", 9.0 if bm25 else None)) if v
        },
        "metadata": {},
    }


HITS = [
    _hit("a", "Vitamin D", "Vitamin D deficiency is common in winter.", 0.032, 1, 2),
    _hit("b", "Insulin resistance", "Insulin resistance precedes type 2 diabetes.", 0.016, None, 1),
    _hit("c", "Sleep", "Short sleep raises insulin resistance in adults.", 0.015, 2, None),
]


def test_features_come_from_the_hits_own_ranks_scores_and_titles():
    rows = ltr.features("Does insulin resistance cause diabetes?", HITS, np.array([0.2, 0.8, 0.6]))
    col = {name: rows[:, i] for i, name in enumerate(ltr.FEATURES)}
    assert rows.shape == (3, len(ltr.FEATURES))
    assert col["fused_recip_rank"].tolist() == [1.0, 0.5, pytest.approx(1 / 3)]
    assert col["dense_recip_rank"].tolist() == [1.0, 0.0, 0.5]
    assert col["bm25_recip_rank"].tolist() == [0.5, 1.0, 0.0]
    assert col["in_both"].tolist() == [1.0, 0.0, 0.0]
    assert col["title_match"][1] > 0 and col["title_match"][0] == 0.0
    assert col["maxsim_margin"].tolist() == pytest.approx([-0.6, 0.0, -0.2])
    assert col["freshness"].tolist() == [1.0, 1.0, 1.0]  # no decay applied: neutral
    assert ltr.features("q", [], np.zeros(0)).shape == (0, len(ltr.FEATURES))


def test_the_reranker_orders_by_the_models_score():
    title_only = LogisticModel(
        ltr.FEATURES,
        np.zeros(len(ltr.FEATURES)),
        np.ones(len(ltr.FEATURES)),
        np.array([1.0 if f == "title_match" else 0.0 for f in ltr.FEATURES]),
        0.0,
    )
    ranked = LtrReranker(providers.embedder(), title_only).rerank("insulin resistance", HITS)
    assert ranked[0]["chunk_id"] == "b" and ranked[0]["rerank_score"] > ranked[-1]["rerank_score"]
    assert LtrReranker(providers.embedder(), title_only).rerank("q", []) == []
    sims = best_sentence_similarity(providers.embedder(), "Does short sleep cause insulin resistance?", HITS)
    assert int(np.argmax(sims)) == 2


def test_the_shipped_model_matches_the_features_and_is_selectable_by_name():
    data = json.loads(ltr.MODEL_PATH.read_text())
    assert tuple(data["features"]) == ltr.FEATURES and "trained_on" in data
    assert isinstance(providers.reranker("ltr"), LtrReranker)
    ranked = providers.reranker("ltr").rerank("Does insulin resistance cause diabetes?", HITS)
    assert sorted(h["chunk_id"] for h in ranked) == ["a", "b", "c"]


def _cv(gains: dict[str, tuple[float, float]]) -> dict:
    return {"systems": {name: {"gain_mean": g, "gain_se": se} for name, (g, se) in gains.items()}}


def test_the_default_must_beat_plain_by_two_standard_errors_on_every_dataset():
    from ragroute.evals.benchmarks.rerank_ltr import choose_default

    strong = _cv({"maxsim": (0.02, 0.004), "ltr": (0.03, 0.005)})
    assert choose_default({"a": strong, "b": strong}) == "ltr"
    noisy_ltr = _cv({"maxsim": (0.01, 0.002), "ltr": (0.012, 0.008)})  # ltr within 2 SE on b
    assert choose_default({"a": strong, "b": noisy_ltr}) == "maxsim"
    flat = _cv({"maxsim": (0.001, 0.002), "ltr": (-0.004, 0.003)})
    assert choose_default({"a": strong, "b": flat}) == "none"
