"""Eval runner and `ragroute eval` CLI on a tiny inline BEIR dataset, with the real index."""

from __future__ import annotations

import json

import pytest
from ragroute.evals import runner
from ragroute.evals.cli import EXIT_REGRESSION, main
from ragroute.evals.datasets import EvalQuery, load_beir
from ragroute.tools.errors import ConfigError

DOCS = {
    "volcano": ("Volcanoes", "Basaltic lava erupts from shield volcanoes such as Mauna Loa in Hawaii."),
    "penguin": ("Penguins", "Emperor penguins breed during the Antarctic winter and huddle for warmth."),
    "insulin": ("Insulin", "Insulin is a peptide hormone produced by beta cells of the pancreatic islets."),
    "tides": ("Tides", "Ocean tides are caused by the gravitational pull of the Moon and the Sun."),
    "bread": ("Sourdough", "Sourdough bread rises through fermentation by wild yeast and lactobacilli."),
    "chess": ("Chess openings", "The Sicilian Defence is a chess opening that begins with 1.e4 c5."),
}
QUERIES = [
    ("q1", "Which hormone do pancreatic beta cells produce?", "insulin"),
    ("q2", "What causes ocean tides?", "tides"),
    ("q3", "When do emperor penguins breed?", "penguin"),
]


@pytest.fixture()
def tiny_beir(tmp_path):
    folder = tmp_path / "tinybeir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in DOCS.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t, "answers": [g]}) + "\n" for q, t, g in QUERIES)
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{g}\t1\n" for q, _, g in QUERIES)
    )
    return folder


@pytest.fixture()
def eval_root(tmp_path, monkeypatch):
    root = tmp_path / "evalidx"
    monkeypatch.setenv("RAGROUTE_EVAL_INDEX_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def test_retrieval_eval_end_to_end_and_index_reuse(tiny_beir, eval_root):
    ds = load_beir(tiny_beir)
    first = runner.run_retrieval_eval(ds, ks=(1, 5), progress=False)
    m = first["metrics"]
    assert m["queries"] == 3
    # each question shares distinctive words with exactly one passage
    assert m["hit@1"] == 1.0 and m["ndcg@5"] == 1.0 and m["mrr@5"] == 1.0
    assert m["precision@5"] == pytest.approx(1 / 5)  # one relevant doc per query among 5 slots
    assert m["latency_p50_ms"] > 0
    assert first["index"]["reused"] is False and first["index"]["stats"]["documents"] == 6
    assert [r["ranked"][0] for r in first["records"]] == ["insulin", "tides", "penguin"]
    second = runner.run_retrieval_eval(ds, ks=(1, 5), progress=False, limit=2)
    assert second["index"]["reused"] is True and second["index"]["path"] == first["index"]["path"]
    assert second["metrics"]["queries"] == 2
    # a changed corpus gets its own index folder
    (tiny_beir / "corpus.jsonl").write_text(
        (tiny_beir / "corpus.jsonl").read_text() + json.dumps({"_id": "x", "text": "Extra."}) + "\n"
    )
    assert runner.index_dir_for(load_beir(tiny_beir)) != runner.index_dir_for(ds)


def test_unknown_config_key_is_config_error(tiny_beir, eval_root):
    with pytest.raises(ConfigError, match="unknown eval setting 'colour'"):
        runner.run_retrieval_eval(load_beir(tiny_beir), config={"colour": "red"}, progress=False)


def test_compare_to_baseline_only_guards_quality():
    current = {"metrics": {"ndcg@10": 0.70, "faithfulness": 0.90, "latency_p95_ms": 900.0}}
    baseline = {"ndcg@10": 0.75, "faithfulness": 0.91, "latency_p95_ms": 100.0, "only_in_baseline": 1.0}
    drops = runner.compare_to_baseline(current, baseline, max_drop=0.02)
    assert [d["metric"] for d in drops] == ["ndcg@10"]
    assert drops[0]["drop"] == pytest.approx(0.05)
    assert runner.compare_to_baseline(current, baseline, max_drop=0.06) == []


def test_score_graph_output_by_hand():
    class Lookup:
        def get(self, chunk_id):
            docs = {"c1": ("d1", "Aspirin reduces heart attacks in adults."), "c2": ("d2", "Lava flows.")}
            doc, text = docs.get(chunk_id, (None, ""))
            return doc, {}, text

    q = EvalQuery("q", "What does aspirin reduce?", ["heart attacks"], ["d1"], True)
    out = {
        "answer": "Aspirin reduces heart attacks [1]. Volcanoes erupt [2].",
        "citations": [{"n": 1, "chunk_id": "c1", "doc_id": "d1"}, {"n": 2, "chunk_id": "c2", "doc_id": "d2"}],
        "route": "simple",
        "abstained": False,
        "faithfulness": 0.8,
        "generator": "extractive-offline",
        "timings": {"retrieve": 12.0, "total": 30.0},
        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
        "contexts": ["c1", "c2"],
        "retrieved": ["c2", "c1"],
    }

    def support(sentence, passage):
        return 1.0 if "heart" in passage else 0.0

    rec = runner.score_graph_output(q, out, {"d1": 1}, Lookup(), lambda d, m: d, prices={}, support=support)
    m = rec["metrics"]
    assert m["citation_precision"] == 0.5 and m["citation_recall"] == 1.0
    assert m["citation_accuracy"] == 0.5  # [1] supports its sentence, [2] does not (by the stub scorer)
    # markers dropped -> aspirin reduces heart attacks volcanoes erupt (6); gold: heart attacks -> P=2/6 R=1
    assert m["answer_f1"] == pytest.approx(2 * (1 / 3) / (1 / 3 + 1)) and m["answer_recall"] == 1.0
    assert m["context_recall"] == 1.0 and m["supporting_in_context"] == 1.0
    assert m["mrr@5"] == 0.5  # d1 is the second retrieved document
    assert rec["cost_usd"] == 0.0 and rec["route"] == "simple"


def test_cli_json_and_regression_exit_code(tiny_beir, eval_root, tmp_path, capsys):
    out_dir = tmp_path / "out"
    base = [str(tiny_beir), "--mode", "retrieval", "--reranker", "none", "--no-progress", "--k", "1,5"]
    code = main([*base, "--json", "--out", str(out_dir), "--save-baseline", str(tmp_path / "base.json")])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["hit@1"] == 1.0 and payload["dataset"] == "tinybeir"
    assert (out_dir / payload["results_json"].split("/")[-1]).exists()
    assert payload["chart_png"].endswith(".png") and (out_dir / payload["chart_png"].split("/")[-1]).exists()
    # the same system on a split with a hard query (the chess passage is judged for a bread question)
    # scores lower than the saved baseline -> exit 3, naming the metrics that dropped
    with (tiny_beir / "queries.jsonl").open("a") as f:
        f.write(json.dumps({"_id": "q4", "text": "How does sourdough bread rise?"}) + "\n")
    (tiny_beir / "qrels" / "hard.tsv").write_text(
        "".join(f"{q}\t{g}\t1\n" for q, _, g in QUERIES) + "q4\tchess\t1\n"
    )
    hard = [*base, "--split", "hard", "--json", "--no-chart", "--out", str(out_dir)]
    code = main([*hard, "--baseline", str(tmp_path / "base.json")])
    assert code == EXIT_REGRESSION
    payload = json.loads(capsys.readouterr().out)
    assert payload["hit@1"] == 0.75  # 3 of 4 queries still find their passage first
    assert {r["metric"] for r in payload["regressions"]} >= {"hit@1", "ndcg@5", "mrr@5"}
    assert main([*hard, "--baseline", str(tmp_path / "base.json"), "--max-drop", "0.5"]) == 0
    capsys.readouterr()
    # the saved baseline of the same run passes
    code = main([*base, "--no-chart", "--out", str(out_dir), "--baseline", str(tmp_path / "base.json")])
    assert code == 0
    assert "hit@1" in capsys.readouterr().out  # the rich table


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["scifact", "--config", "{bad json"]) == 2
    assert "--config is not valid JSON" in capsys.readouterr().err


def test_graph_eval_on_tiny_beir_with_the_real_graph(tiny_beir, eval_root):
    results = runner.run_graph_eval(load_beir(tiny_beir), {}, limit=2, progress=False)
    m = results["metrics"]
    assert m["queries"] == 2 and m["errors"] == 0
    assert {"retrieve", "total"} <= set(results["per_node_latency"])
    assert sum(r["queries"] for r in results["per_route"].values()) == 2
    first = results["records"][0]
    assert first["route"] in ("simple", "expand", "multihop") and first["timings"]["total"] > 0
    # gold passages are among what the graph retrieved for these one-passage questions
    assert m["supporting_retrieved"] == 1.0
    assert m["cost_per_query_usd"] == 0.0  # offline generator
    # the same questions again: every answer comes from the response cache, and the eval says so
    again = runner.run_graph_eval(load_beir(tiny_beir), {"cache": True}, limit=2, progress=False)
    assert again["metrics"]["cache_hit_rate"] == 1.0
    assert [r["answer"] for r in again["records"]] == [r["answer"] for r in results["records"]]


def test_eval_subcommand_is_registered_on_the_main_cli():
    from ragroute.cli import build_parser
    from ragroute.evals.cli import run_eval_command

    args = build_parser().parse_args(["eval", "scifact", "--mode", "retrieval", "--limit", "3", "--json"])
    assert args.func is run_eval_command and args.limit == 3 and args.json is True


class FakeIndex:
    """Chunk lookups for a graph eval driven by a fake `ask` (no model, no Chroma)."""

    path = "/nonexistent/fake-index"

    def get_chunk(self, chunk_id):
        from ragroute.tools.types import Chunk

        doc = chunk_id.split("-")[0]
        return Chunk(chunk_id=chunk_id, doc_id=doc, text=DOCS[doc][1]) if doc in DOCS else None

    def get_parent(self, parent_id):
        return None

    def stats(self):
        return {"documents": len(DOCS)}


def test_graph_eval_aggregates_and_llm_judge_with_fakes(tiny_beir):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from ragroute.evals.judge import parse_verdict
    from ragroute.runtime import providers

    outputs = {
        "Which hormone do pancreatic beta cells produce?": {
            "answer": "Insulin is a peptide hormone produced by beta cells of the pancreatic islets [1].",
            "citations": [{"n": 1, "chunk_id": "insulin-0", "doc_id": "insulin"}],
            "route": "simple",
            "abstained": False,
            "faithfulness": 1.0,
            "generator": "extractive-offline",
            "timings": {"retrieve": 10.0, "generate": 30.0, "total": 50.0},
            "usage": {},
            "contexts": ["insulin-0"],
            "retrieved": ["insulin-0", "tides-0"],
        },
        "What causes ocean tides?": {
            "answer": "I don't know.",
            "citations": [],
            "route": "expand",
            "abstained": True,
            "generator": "extractive-offline",
            "timings": {"retrieve": 20.0, "total": 70.0},
            "usage": {},
            "contexts": ["bread-0"],
            "retrieved": ["bread-0"],
        },
    }
    judge = FakeListChatModel(responses=["CORRECT", "INCORRECT"])
    with providers.using(providers.Providers(chat_model=judge)):
        results = runner.run_graph_eval(
            load_beir(tiny_beir),
            {},
            limit=2,
            index=FakeIndex(),
            progress=False,
            ask=lambda question, **kw: outputs[question],
            judge="fake:judge",
        )
    m = results["metrics"]
    assert m["idk_rate"] == 0.5 and m["supporting_in_context"] == 0.5
    assert m["citation_precision"] == 1.0  # only the answered question has a defined precision
    assert m["citation_recall"] == 0.5  # the abstained question cited nothing (recall 0)
    assert m["judge_correct"] == 0.5  # the fake judge grades the answer CORRECT, the refusal INCORRECT
    assert (
        results["per_route"]["simple"]["queries"] == 1 and results["per_route"]["expand"]["abstained"] == 1.0
    )
    assert results["per_node_latency"]["retrieve"]["p50_ms"] == 15.0  # (10 + 20) / 2 by interpolation
    assert list(results["per_node_latency"])[-1] == "total"
    assert parse_verdict("Verdict: INCORRECT.") == 0.0 and parse_verdict("correct") == 1.0
    assert parse_verdict("maybe") is None
