"""tools/titles: base titles, whether a text names a title, and title evidence among retrieved hits."""

from __future__ import annotations

from ragroute.tools.titles import base_title, names_title, title_evidence

from tests.unit.test_node_expand_decompose import _doc


def test_names_title_matches_whole_names_without_the_disambiguator():
    assert base_title("Kiss and Tell (1945 film)") == "Kiss and Tell"
    assert names_title("the film Kiss and Tell?", "Kiss and Tell (1945 film)")
    assert not names_title("a kiss and tell story", "Kiss and Tell (1945 film)")  # case-sensitive: a name
    assert not names_title("Kiss and Tellers", "Kiss and Tell")  # whole words only
    assert not names_title("the history of it", "history")  # a common-word title is not a name


def test_title_evidence_puts_named_then_linked_documents_first():
    q = "What government position was held by the woman who portrayed Corliss Archer in Kiss and Tell?"
    film = _doc("film", "Kiss and Tell (1945 film)", "Kiss and Tell stars Shirley Temple as Corliss Archer.")
    sequel = _doc("seq", "A Kiss for Corliss", "A Kiss for Corliss is a 1949 sequel.")
    actress = _doc("st", "Shirley Temple", "Shirley Temple Black was an actress and a diplomat.")
    noise = [_doc(f"n{i}", f"Noise {i}", "An unrelated government position.") for i in range(4)]
    hop1 = [sequel, film, *noise]
    hop2 = [*noise[:3], actress]
    got = [h["chunk_id"] for h in title_evidence(q, [hop1, hop2])]
    assert got == ["film::0", "st::0"]  # the sequel is neither named nor linked
    # no titled hits: nothing to promote
    assert title_evidence(q, [[{"chunk_id": "x::0", "text": "Kiss and Tell"}]]) == []


def test_title_evidence_is_one_chunk_per_document():
    q = "How does the Deploy Runbook roll back a release?"
    runbook = [
        {**_doc("rb", "Deploy Runbook", f"Step {i} of the rollout."), "chunk_id": f"rb::{i}", "doc_id": "rb"}
        for i in range(5)
    ]
    other = {**_doc("ops", "Ops Guide", "Rollbacks follow the Deploy Runbook."), "doc_id": "ops"}
    got = [h["chunk_id"] for h in title_evidence(q, [runbook, [other]])]
    assert got == ["rb::0", "ops::0"]  # the named document once (its best chunk), then the one naming it
