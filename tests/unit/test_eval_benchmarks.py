"""Benchmark helpers (fast) and the benchmarks themselves on small slices (marked slow)."""

from __future__ import annotations

import json

import pytest
from ragroute.evals import metrics as m
from ragroute.evals.benchmarks import scale


class CountingEmbedder:
    def __init__(self):
        self.calls: list[list[str]] = []

    def embed_documents(self, texts):
        self.calls.append(list(texts))
        return [[float(len(t)), 1.0] for t in texts]

    def embed_query(self, text):
        return [float(len(text)), 1.0]


def test_chunk_texts_repeat_pool_with_copy_suffix():
    texts = scale.chunk_texts(["alpha beta", "gamma delta"], 5)
    assert texts == [
        "alpha beta",
        "gamma delta",
        "alpha beta [copy 1]",
        "gamma delta [copy 1]",
        "alpha beta [copy 2]",
    ]


def test_reused_embedder_embeds_each_original_once():
    base = CountingEmbedder()
    emb = scale.ReusedEmbedder(base)
    first = emb.embed_documents(["alpha beta", "gamma"])
    again = emb.embed_documents(["alpha beta [copy 1]", "gamma [copy 7]", "new text"])
    assert base.calls == [["alpha beta", "gamma"], ["new text"]]
    assert again[:2] == first  # copies get their original's vector
    assert (emb.embedded, emb.reused) == (3, 2)


def test_make_pieces_groups_sentences():
    corpus = {
        "d": {"title": "", "text": "One is here now. Two is here now. Three is here now. Four is here now."}
    }
    pieces = scale.make_pieces(corpus, sentences_per_piece=3)
    assert pieces == ["One is here now. Two is here now. Three is here now."]  # "Four ..." is under 40 chars


def test_support_scorer_uses_the_graph_faithfulness_score(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = m.support_scorer()
    assert scorer is not m.overlap_support
    passage = "Emperor penguins breed during the Antarctic winter. They huddle to keep warm."
    assert scorer("Emperor penguins breed during the Antarctic winter.", passage) >= 0.8
    assert scorer("Volcanic basalt erupts in Iceland every spring.", passage) < 0.5


@pytest.mark.slow
def test_side_by_side_runs_on_a_slice(tmp_path, monkeypatch):
    from ragroute.evals.benchmarks import side_by_side

    monkeypatch.setenv("RAGROUTE_EVAL_INDEX_DIR", str(tmp_path / "idx"))
    assert (
        side_by_side.main(
            ["--dataset", "scifact_dev", "--split", "test", "--limit", "5", "--out", str(tmp_path)]
        )
        == 0
    )
    result = json.loads((tmp_path / "side_by_side_scifact.json").read_text())
    names = [row["system"] for row in result["systems"]]
    assert names[0] == "ragroute hybrid" and "LangChain EnsembleRetriever (BM25 + Chroma)" in names
    assert all(0 <= row["ndcg@10"] <= 1 for row in result["systems"])


def test_compare_runs_lines_up_quality_and_latency_of_two_folders(tmp_path):
    from ragroute.evals.benchmarks import compare_runs

    def write(folder, hybrid_ndcg, p95):
        folder.mkdir()
        metrics = {
            p: {"ndcg@10": 0.5, "recall@10": 0.6, "recall@100": 0.9, "hit@5": 0.7} for p in ("bm25", "dense")
        }
        metrics["hybrid"] = {"ndcg@10": hybrid_ndcg, "recall@10": 0.6, "recall@100": 0.9, "hit@5": 0.7}
        latency = {"hybrid_k10": {"p50": 10.0, "p95": p95}}
        (folder / "retrieval_scifact.json").write_text(
            json.dumps({"metrics": metrics, "ingest_s": 60.0, "latency_ms": latency})
        )

    write(tmp_path / "a", 0.70, 20.0)
    write(tmp_path / "b", 0.71, 25.0)
    quality, latency = compare_runs.compare(tmp_path / "a", tmp_path / "b")
    assert ("retrieval_scifact hybrid ndcg@10", 0.70, 0.71) in quality
    assert [row for row in quality if row[1] != row[2]] == [("retrieval_scifact hybrid ndcg@10", 0.70, 0.71)]
    assert ("retrieval_scifact hybrid k=10 p95 ms", 20.0, 25.0) in latency
    text = compare_runs.render("t", ("old", "new"), quality, latency)
    assert "Quality numbers that differ: 1 of 12 measured in both runs." in text
    assert "| retrieval_scifact hybrid ndcg@10 | 0.7 | 0.71 | +0.0100 |" in text
    assert "| retrieval_scifact hybrid k=10 p95 ms | 20.0 | 25.0 | +5.0 |" in text
