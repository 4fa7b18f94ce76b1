"""BEIR and golden-set loaders on tiny inline files, including the malformed cases."""

from __future__ import annotations

import json

import pytest
from ragroute.evals.datasets import load_beir, load_dataset, load_golden, load_qrels, resolve_dataset
from ragroute.tools.errors import InputError


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _beir(tmp_path, *, header=True, splits=("test",)):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    _write_jsonl(
        folder / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Cats", "text": "Cats purr."},
            {"_id": "d2", "title": "Dogs", "text": "Dogs bark.", "year": 2020},
        ],
    )
    _write_jsonl(
        folder / "queries.jsonl",
        [
            {"_id": "q1", "text": "what purrs", "answers": ["cats"]},
            {"_id": "q2", "text": "what barks"},
            {"_id": "q3", "text": "unanswerable thing", "answerable": False},
            {"_id": "q4", "text": "a query of another split"},
        ],
    )
    for split in splits:
        head = "query-id\tcorpus-id\tscore\n" if header else ""
        (folder / "qrels" / f"{split}.tsv").write_text(head + "q1\td1\t2\nq2\td2\t1\nq2\td1\t0\n")
    return folder


@pytest.mark.parametrize("header", [True, False])
def test_beir_loads_with_or_without_header(tmp_path, header):
    ds = load_beir(_beir(tmp_path, header=header))
    assert ds.split == "test" and ds.kind == "beir"
    assert [q.qid for q in ds.queries] == ["q1", "q2", "q3"]  # q4 is not judged in this split
    assert ds.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d1": 0}}
    q1, q2, q3 = ds.queries
    assert q1.answers == ["cats"] and q1.gold_doc_ids == ["d1"]
    assert q2.gold_doc_ids == ["d2"]  # grade 0 is not gold
    assert q3.answerable is False and q3.gold_doc_ids == []
    assert ds.corpus["d2"] == {"title": "Dogs", "text": "Dogs bark.", "metadata": {"year": 2020}}


def test_split_choice_by_name_or_file(tmp_path):
    folder = _beir(tmp_path, splits=("train", "test"))
    assert load_beir(folder).split == "test"  # preferred when several exist
    assert load_beir(folder, "train").split == "train"
    assert load_beir(folder, str(folder / "qrels" / "train.tsv")).split == "train"
    with pytest.raises(InputError, match=r"no qrels for split 'dev'; options: \['test', 'train'\]"):
        load_beir(folder, "dev")


def test_fingerprint_changes_with_corpus(tmp_path):
    folder = _beir(tmp_path)
    before = load_beir(folder).corpus_fingerprint()
    assert load_beir(folder).corpus_fingerprint() == before
    _write_jsonl(folder / "corpus.jsonl", [{"_id": "d1", "title": "Cats", "text": "Cats meow."}])
    assert load_beir(folder).corpus_fingerprint() != before


def test_malformed_beir_files_raise_input_error(tmp_path):
    folder = _beir(tmp_path)
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\nq2\td2\tmany\n")
    with pytest.raises(InputError, match=r"test.tsv:2: score 'many' is not a number"):
        load_beir(folder)
    (folder / "qrels" / "test.tsv").write_text("q1 d1\n")
    with pytest.raises(InputError, match="expected 'query-id"):
        load_qrels(folder / "qrels" / "test.tsv")
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{broken\n')
    with pytest.raises(InputError, match=r"corpus.jsonl:2: not valid JSON"):
        load_beir(folder)
    (folder / "corpus.jsonl").write_text('{"_id": "d1"}\n')
    with pytest.raises(InputError, match="needs '_id' and a string 'text'"):
        load_beir(folder)
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(InputError, match="missing corpus.jsonl"):
        load_beir(folder)


def test_golden_set(tmp_path):
    path = tmp_path / "golden.jsonl"
    _write_jsonl(
        path,
        [
            {
                "id": "a",
                "question": "Max token lifetime?",
                "expected_answer": "24 hours",
                "expected_sources": ["docs/auth.md"],
            },
            {"question": "Who won in 2090?", "answerable": False},
        ],
    )
    ds = load_golden(path)
    assert ds.kind == "golden" and ds.corpus == {}
    assert [q.qid for q in ds.queries] == ["a", "2"]
    assert ds.queries[0].answers == ["24 hours"] and ds.queries[0].answerable is True
    assert ds.qrels == {"a": {"docs/auth.md": 1}}
    assert ds.queries[1].answerable is False


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"expected_answer": "x"}, "needs a non-empty 'question'"),
        ({"question": "q", "answer": "x"}, r"unknown field\(s\) \['answer'\]"),
        ({"question": "q"}, "needs 'expected_answer' or 'expected_sources'"),
        ({"question": "q", "expected_answer": "x", "answerable": "yes"}, "'answerable' must be true"),
        ({"question": "q", "expected_sources": {"a": 1}}, "'expected_sources' must be a string or a list"),
    ],
)
def test_golden_set_errors(tmp_path, row, message):
    path = tmp_path / "g.jsonl"
    _write_jsonl(path, [row])
    with pytest.raises(InputError, match=message):
        load_golden(path)


def test_resolve_short_names(tmp_path, monkeypatch):
    folder = _beir(tmp_path)
    monkeypatch.setenv("RAGROUTE_DATA_DIR", str(tmp_path))
    assert resolve_dataset("tiny") == folder
    assert load_dataset("tiny").name == "tiny"
    with pytest.raises(InputError, match="dataset 'nope' not found"):
        resolve_dataset("nope")
    with pytest.raises(InputError, match="limit must be a positive integer"):
        load_dataset("tiny").limited(0)
