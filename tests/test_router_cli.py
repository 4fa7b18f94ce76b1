"""`ragroute train-router` on a tiny BEIR folder: it labels, fits and writes a model the graph then uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ragroute.api import ask
from ragroute.cli import main
from ragroute.context import Context
from ragroute.tools.router_model import ROUTES, load_router

CORPUS = {
    "d1": ("Lake Orrin", "Lake Orrin is a lake in the Kestrel Hills, 14 kilometres long."),
    "d2": ("Kestrel Hills", "The Kestrel Hills are a range of hills whose highest point is Mount Brae."),
    "d3": ("Mount Brae", "Mount Brae is 812 metres high and was first climbed in 1871 by Ada Finch."),
    "d4": ("Ada Finch", "Ada Finch was a Scottish mountaineer and botanist born in 1843 in Perth."),
    "d5": ("Orrin ferry", "A ferry crosses Lake Orrin every hour in summer; the crossing takes 20 minutes."),
    "d6": ("Brae hut", "The Brae hut below the summit of Mount Brae sleeps twelve climbers."),
}
QUERIES = {
    "q1": ("How long is Lake Orrin?", ["d1"]),
    "q2": ("How long does the ferry crossing take?", ["d5"]),
    "q3": ("Who first climbed the highest point of the Kestrel Hills?", ["d2", "d3"]),
    "q4": ("Where was the first person to climb Mount Brae born?", ["d3", "d4"]),
    "q5": ("How many climbers does the Brae hut sleep?", ["d6"]),
    "q6": ("How high is Mount Brae?", ["d3"]),
}


@pytest.fixture
def beir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAGROUTE_EVAL_INDEX_DIR", str(tmp_path / "eval"))
    folder = tmp_path / "hills"
    (folder / "qrels").mkdir(parents=True)
    corpus = [json.dumps({"_id": i, "title": t, "text": x}) for i, (t, x) in CORPUS.items()]
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n")
    queries = [json.dumps({"_id": q, "text": t}) for q, (t, _) in QUERIES.items()]
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    rows = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t1" for q, (_, ds) in QUERIES.items() for d in ds)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.mark.slow  # indexes a corpus and runs the graph 18 times: ~55 s on the shared 2-core machine
def test_train_router_writes_a_model_that_context_and_the_graph_use(beir, tmp_path, capsys):
    out = tmp_path / "my-router.json"
    assert main(["train-router", str(beir), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == len(QUERIES) and sum(report["labels"].values()) == len(QUERIES)
    model = load_router(out)
    assert model.classes == ROUTES and model.about["training_data"]["questions"] == len(QUERIES)
    silver = out.with_suffix(".silver.jsonl")
    assert len(silver.read_text().splitlines()) == len(QUERIES) * len(ROUTES)  # every route once per question

    # a rerun reads the cached route outcomes instead of running the graph again
    assert main(["train-router", str(beir), "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    assert len(silver.read_text().splitlines()) == len(QUERIES) * len(ROUTES)

    ctx = Context(router_model=str(out), index_dir=str(tmp_path / "unused"))
    assert ctx.router_model == str(out)
    index_dir = next((tmp_path / "eval").glob("hills-*"))
    result = ask(
        "Who first climbed Mount Brae?", index_dir=str(index_dir), all_access=True, router_model=str(out)
    )
    assert result["route"] in ROUTES and result["answer"]


def test_train_router_rejects_bad_arguments_in_one_line(beir, tmp_path, capsys):
    assert main(["train-router", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ragroute: error: dataset") and "\n" not in err
    assert main(["train-router", str(beir), "--out", str(tmp_path / "no" / "dir" / "r.json")]) == 2
    assert "--out" in capsys.readouterr().err
