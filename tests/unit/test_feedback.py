"""Feedback through the Python API on a real index: every delivered answer has an id that is recorded in
<index>/feedback.sqlite; ragroute.feedback rates it (validated, owner only, correct source checked
against what the question could read); ratings survive reopening; the export is a golden set load_golden
reads; runs outside a delivery (graph.invoke) are not recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import ragroute
from ragroute.evals.datasets import load_golden
from ragroute.feedback_cli import golden_set
from ragroute.runtime import answer_ids
from ragroute.runtime.feedback import FEEDBACK_FILE, AnswerNotFound, FeedbackStore
from ragroute.runtime.providers import Providers
from ragroute.tools.errors import InputError

from tests.unit.test_tracing import langfuse_memory  # noqa: F401 - the in-memory Langfuse client fixture

QUESTION = "How long do refresh tokens last?"


def ask(index: Any, question: str = QUESTION, **kw: Any) -> dict[str, Any]:
    return ragroute.ask(question, providers=Providers(index=index), **kw)


def rate(index: Any, answer_id: str, rating: str = "down", **kw: Any) -> dict[str, Any]:
    return ragroute.feedback(answer_id, rating, providers=Providers(index=index), **kw)


def test_every_answer_has_a_recorded_id(index: Any) -> None:
    out = ask(index)
    assert answer_ids.ANSWER_ID.match(out["answer_id"])
    row = FeedbackStore(index.path).answer(out["answer_id"], "local:")
    assert row["question"] == QUESTION and row["answer"] == out["answer"] and row["route"] == out["route"]
    assert [c["doc_id"] for c in row["citations"]] == [c["doc_id"] for c in out["citations"]]
    assert row["scope"] == {"groups": [], "clearance": 0} and row["rating"] is None
    # a response-cache hit is a new delivery: its own id and record
    again = ask(index)
    assert again["cache"]["response"] == "hit" and again["answer_id"] != out["answer_id"]
    assert FeedbackStore(index.path).answer(again["answer_id"], "local:")["answer"] == out["answer"]


def test_thumbs_down_with_a_correct_source_is_stored_and_survives_reopening(index: Any) -> None:
    out = ask(index)
    shown = rate(index, out["answer_id"], correct_source="auth-old", comment="wrong version")
    assert shown["feedback"]["rating"] == "down" and shown["feedback"]["correct_source"] == "auth-old"
    assert shown["scored"] is False  # no Langfuse configured
    # a second rating replaces the first
    rate(index, out["answer_id"], "up")
    db = sqlite3.connect(Path(index.path) / FEEDBACK_FILE)  # another connection, as a restarted process
    assert db.execute("SELECT rating, correct_source FROM feedback").fetchall() == [("up", None)]
    db.close()
    assert FeedbackStore(index.path).answer(out["answer_id"], "local:")["rating"] == "up"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rating": "meh"}, "rating='meh' is unknown"),
        ({"rating": "down", "comment": "x" * 2001}, "comment is 2001 characters"),
        ({"rating": "down", "correct_answer": 5}, "correct_answer must be a string"),
        ({"rating": "down", "comment": "bad \ud800"}, "invalid unicode"),
        ({"rating": "down", "correct_source": "no-such-doc"}, "is not a document in this index"),
        # the board minutes exist but the question's public scope could not read them: the same words
        ({"rating": "down", "correct_source": "secret"}, "is not a document in this index"),
    ],
)
def test_bad_feedback_is_a_clear_input_error(index: Any, kwargs: dict[str, Any], message: str) -> None:
    out = ask(index)
    rating = kwargs.pop("rating")
    with pytest.raises(InputError, match=message):
        rate(index, out["answer_id"], rating, **kwargs)
    assert FeedbackStore(index.path).answer(out["answer_id"], "local:")["rating"] is None


def test_only_the_asker_may_rate_and_unknown_ids_look_the_same(index: Any) -> None:
    mine = ask(index, extra={"user_id": "alice"})
    with pytest.raises(AnswerNotFound) as other:
        rate(index, mine["answer_id"], user="bob")
    unknown = answer_ids.new_id()
    with pytest.raises(AnswerNotFound) as missing:
        rate(index, unknown, user="bob")
    assert (
        str(other.value) == f"no answer {mine['answer_id']!r}"
        and str(missing.value) == f"no answer {unknown!r}"
    )
    with pytest.raises(AnswerNotFound):
        rate(index, "not-an-id", user="alice")
    assert rate(index, mine["answer_id"], "up", user="alice")["feedback"]["rating"] == "up"


def test_a_graph_run_outside_a_delivery_is_not_recorded(index: Any) -> None:
    out = (
        ragroute.build_graph(Providers(index=index))
        .compile()
        .invoke({"question": QUESTION}, context=ragroute.Context())
    )
    assert answer_ids.ANSWER_ID.match(out["answer_id"])
    with pytest.raises(AnswerNotFound):
        FeedbackStore(index.path).answer(out["answer_id"], "local:")


def test_export_is_a_golden_set_eval_reads(make_index: Any, tmp_path: Path) -> None:
    index = make_index()  # only this test's ratings
    fixed = ask(index)
    rate(index, fixed["answer_id"], correct_source="auth", correct_answer="30 days")
    good = ask(index, "Where does the office cat sleep?")
    assert not good["abstained"], good
    rate(index, good["answer_id"], "up")
    vague = ask(index, "Why does hybrid search work?")
    rate(index, vague["answer_id"], "down")  # no correction: nothing to learn the gold from
    records, skipped = golden_set(FeedbackStore(index.path).rated("all"))
    assert skipped == 1 and [r["id"] for r in records] == [fixed["answer_id"], good["answer_id"]]
    path = tmp_path / "golden.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    ds = load_golden(path)
    first, second = ds.queries
    assert (first.text, first.answers, first.gold_doc_ids) == (QUESTION, ["30 days"], ["auth"])
    assert second.answers == [good["answer"]] and second.gold_doc_ids == [
        c["doc_id"] for c in good["citations"]
    ]
    assert first.metadata["rating"] == "down" and first.metadata["route"] == fixed["route"]
    assert [r["id"] for r in golden_set(FeedbackStore(index.path).rated("good"))[0]] == [good["answer_id"]]


def test_a_confirmed_abstention_is_an_unanswerable_record() -> None:
    rated = {
        "answer_id": answer_ids.new_id(),
        "question": "Who won the 1930 world cup?",
        "answer": "I don't have enough information to answer that.",
        "abstained": True,
        "citations": [],
        "rating": "up",
        "route": "simple",
    }
    (record,), skipped = golden_set([rated])
    assert skipped == 0 and record["answerable"] is False and "expected_answer" not in record
    # the same abstention marked bad with the right source: an answerable question with its gold
    (fixed,), _ = golden_set([{**rated, "rating": "down", "correct_source": "history.md"}])
    assert fixed["answerable"] is True and fixed["expected_sources"] == ["history.md"]


def test_a_rating_is_a_langfuse_score_on_the_answers_trace(index: Any, langfuse_memory: Any) -> None:  # noqa: F811
    client, exporter, scores = langfuse_memory
    out = ask(index, "How long do access tokens last?")
    client.flush()
    (root,) = [s for s in exporter.get_finished_spans() if s.name == "ragroute"]
    trace_id = format(root.context.trace_id, "032x")
    assert FeedbackStore(index.path).answer(out["answer_id"], "local:")["trace_id"] == trace_id
    scores.clear()  # the run's own faithfulness score
    shown = rate(index, out["answer_id"], correct_source="auth", comment="too vague")
    assert shown["scored"] is True
    assert [(s["name"], s["value"], s["traceId"], s["dataType"]) for s in scores] == [
        ("user_feedback", 0.0, trace_id, "BOOLEAN")
    ]
    assert "too vague" in scores[0]["comment"] and "auth" in scores[0]["comment"]
    # a cache hit is a new answer of the same trace: its rating scores the run that made it
    again = ask(index, "How long do access tokens last?")
    assert again["cache"]["response"] == "hit"
    rate(index, again["answer_id"], "up")
    assert scores[-1]["traceId"] == trace_id and scores[-1]["value"] == 1.0


def test_deleting_the_file_forgets_everything_and_recording_goes_on(index: Any) -> None:
    old = ask(index, "Where does the office cat sleep?")
    (Path(index.path) / FEEDBACK_FILE).unlink()
    with pytest.raises(AnswerNotFound):
        rate(index, old["answer_id"], "up")
    new = ask(index, "Why does hybrid search work?")
    assert rate(index, new["answer_id"], "up")["feedback"]["rating"] == "up"


def test_a_redacting_run_records_no_raw_pii(index: Any) -> None:
    email = "jo.smith@example.org"
    out = ask(index, f"I am {email}: how long do refresh tokens last?", redact_query_pii=True)
    kept = FeedbackStore(index.path).answer(out["answer_id"], "local:")["question"]
    assert email not in kept and "<EMAIL_1>" in kept
    on_disk = b"".join(p.read_bytes() for p in Path(index.path).glob(f"{FEEDBACK_FILE}*"))
    assert email.encode() not in on_disk
