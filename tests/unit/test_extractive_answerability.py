"""The extractive generator's answer-or-abstain decision (tools/extractive.answer_features read by the
trained model, tools/answerability.py): a source on the question's topic that does not hold the specific
answer is abstained on; one that holds it is answered."""

from __future__ import annotations

import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.generate import generate
from ragroute.runtime import providers
from ragroute.state import ABSTAIN_TEXT
from ragroute.tools.answerability import default_model
from ragroute.tools.extractive import (
    answer_features,
    can_hold_answer,
    generate_extractive,
    is_question,
    score_sentences,
    specific_terms,
    statements,
    topic_terms,
)

TOWER = {
    "n": 1,
    "chunk_id": "tower::c0",
    "doc_id": "tower",
    "title": "Eiffel Tower",
    "section": "History",
    "text": (
        "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris. "
        "Construction began in January 1887 and the tower was completed in March 1889 as the entrance to "
        "the World's Fair. The tower is 330 metres tall and was the tallest man-made structure in the world "
        "for 41 years. Gustave Eiffel's company designed and built the tower."
    ),
    "metadata": {},
}
HAMLET = {
    "n": 1,
    "chunk_id": "hamlet::c0",
    "doc_id": "hamlet",
    "title": "Hamlet",
    "section": "",
    "text": (
        "Hamlet is a tragedy written by William Shakespeare sometime between 1599 and 1601. "
        "It is Shakespeare's longest play, with 29,551 words. "
        "Set in Denmark, the play depicts Prince Hamlet and his revenge against his uncle, Claudius, who has "
        "murdered Hamlet's father. The play has been performed and adapted many times on stage and screen."
    ),
    "metadata": {},
}


def _answer(question: str, source: dict):
    return generate_extractive(question, [source], providers.embedder(), abstain_text=ABSTAIN_TEXT)


@pytest.mark.parametrize(
    ("question", "source", "expected"),
    [
        ("When was the Eiffel Tower completed?", TOWER, "completed in March 1889"),
        ("Who designed the Eiffel Tower?", TOWER, "Gustave Eiffel's company designed"),
        ("Where is Hamlet set?", HAMLET, "Set in Denmark"),
        ("How many words does Hamlet have?", HAMLET, "29,551 words"),
    ],
)
def test_a_sentence_that_holds_the_answer_is_cited(question, source, expected):
    out = _answer(question, source)
    assert not out.abstained and out.cited == [1]
    assert expected in out.text and out.answerability is not None
    assert out.answerability >= default_model().threshold


@pytest.mark.parametrize(
    "question",
    [
        "When was the Eiffel Tower last repainted?",  # every sentence is about the tower, none says
        "How many times has Hamlet been performed in Denmark?",  # "many times", but no number
    ],
)
def test_a_related_source_without_the_answer_is_abstained_on(question):
    source = TOWER if "Tower" in question else HAMLET
    out = _answer(question, source)
    # the heading-in-context score alone would have answered: the source is on the question's topic
    assert out.best_score >= 0.55
    assert out.abstained and out.text == ABSTAIN_TEXT and out.cited == []
    assert out.answerability is not None and out.answerability < default_model().threshold


def test_a_who_question_about_something_the_source_lacks_is_abstained_on():
    out = _answer("Who directed the most famous film of Hamlet?", HAMLET)
    assert out.abstained and out.text == ABSTAIN_TEXT


def test_the_title_does_not_count_as_evidence():
    """The bare sentence is judged: the same sentence reads closer to the question with its heading."""
    embed = providers.embedder()
    question = "When was the Eiffel Tower last repainted?"
    scored = score_sentences(question, [TOWER], embed)
    features = answer_features(question, scored, [TOWER], embed)
    assert features["bare_score"] < features["best_score"] == scored[0].score
    empty = answer_features(question, [], [TOWER], embed)
    assert empty["bare_score"] == empty["best_score"] == empty["has_candidate"] == 0.0


def test_specific_terms_leave_out_the_title_words():
    topic = topic_terms(TOWER)
    assert topic == {"eiffel", "tower"}  # the title; the section is not the document's topic
    assert specific_terms("When was the Eiffel Tower last repainted?", topic) == {"last", "repainted"}
    # a question made only of title words keeps them all (nothing else to look for)
    assert specific_terms("Eiffel Tower", topic) == {"eiffel", "tower"}


def test_a_section_heading_counts_as_what_its_sentences_are_about():
    """Structured docs: the section names the ask ("Breaking changes"), its sentences never repeat it."""
    notes = {
        "n": 1,
        "title": "Orbit 2.10.0 Release Notes",
        "section": "Breaking changes",
        "text": "Task outputs larger than 16 MB are now stored in object storage. "
        "The legacy v1 REST API was removed.",
    }
    out = _answer("What are the breaking changes in 2.10.0?", notes)
    assert not out.abstained and out.cited == [1] and "object storage" in out.text
    no_section = {**notes, "section": ""}
    assert _answer("What are the breaking changes in 2.10.0?", no_section).abstained


def test_a_quantity_question_needs_a_number():
    assert not can_hold_answer("How many visitors came?", "Many visitors came to the fair.")
    assert can_hold_answer("How many visitors came?", "Seven million visitors came.")
    assert can_hold_answer("How much did it cost?", "It cost $1.5 million.")
    assert can_hold_answer("Who designed it?", "Gustave Eiffel's company designed it.")


async def test_generate_node_abstains_on_a_related_but_unanswering_source():
    runtime = Runtime(context=Context(stale_after_days=100000))
    repainted = "When was the Eiffel Tower last repainted?"
    out = await generate({"question": repainted, "sources": [TOWER]}, runtime)
    assert out["abstained"] and out["answer"] == ABSTAIN_TEXT and out["draft_citations"] == []
    ok = await generate({"question": "When was the Eiffel Tower completed?", "sources": [TOWER]}, runtime)
    assert not ok["abstained"] and ok["draft_citations"] == [1] and "March 1889" in ok["answer"]
    # the knob: a threshold of 0 leaves only the score floor, so the related source is answered from
    loose = await generate(
        {"question": repainted, "sources": [TOWER]},
        Runtime(context=Context(stale_after_days=100000, answer_threshold=0.0)),
    )
    assert not loose["abstained"] and loose["draft_citations"] == [1]


FAQ = {
    "n": 1,
    "chunk_id": "faq::c0",
    "doc_id": "faq",
    "title": "Ferry frequently asked questions",
    "section": "",
    "text": (
        "Are dogs allowed on the ferry? Yes, on a leash and outside the restaurant. "
        "Assistance dogs may go everywhere.\n\n"
        "Can I pay on board? No. Tickets are sold only at the harbour kiosk.\n\n"
        "The ferry runs hourly from 6 am."
    ),
    "metadata": {},
}


def test_a_source_question_is_never_an_answer_sentence():
    """Issue 12: the FAQ's question line scored best and was "answered" with itself."""
    out = _answer("Are dogs allowed on the ferry?", FAQ)
    assert not out.abstained and out.text.startswith("Yes, on a leash and outside the restaurant [1].")
    assert "Are dogs allowed" not in out.text
    scored = score_sentences("Can I pay on board?", [FAQ], providers.embedder())
    assert scored[0].text == "Tickets are sold only at the harbour kiosk."
    assert scored[0].asked == "Can I pay on board?"
    assert not any(is_question(s.text) for s in scored)


def test_statements_know_which_question_they_answer():
    assert statements(FAQ["text"]) == [
        ("Yes, on a leash and outside the restaurant.", "Are dogs allowed on the ferry?"),
        ("Assistance dogs may go everywhere.", "Are dogs allowed on the ferry?"),
        ("No.", "Can I pay on board?"),
        ("Tickets are sold only at the harbour kiosk.", "Can I pay on board?"),
        ("The ferry runs hourly from 6 am.", ""),  # a new paragraph after the answer: not part of it
    ]
    # the answer may start in the next paragraph; a quote or bracket may close the question
    assert statements('Why "hourly?"\n\nDemand is flat.\n\nOther text.') == [
        ("Demand is flat.", 'Why "hourly?"'),
        ("Other text.", ""),
    ]
    assert is_question("Is it (really?)") and not is_question("It is. Really.")


def test_a_title_that_asks_is_not_an_faq_question():
    """A work named by a question ("Why Is There Air?", an album): the heading already holds it."""
    album = {
        "n": 1,
        "title": "Why Is There Air?",
        "text": "Why Is There Air?  (1965) is Bill Cosby's third album.  It was recorded in Las Vegas.",
    }
    scored = score_sentences("Where was Bill Cosby's third album recorded?", [album], providers.embedder())
    assert {s.text for s in scored} == {
        "(1965) is Bill Cosby's third album.",
        "It was recorded in Las Vegas.",
    }
    assert all(s.asked == "" for s in scored)
