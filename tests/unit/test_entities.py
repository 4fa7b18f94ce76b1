"""tools/entities: capitalised spans, compared items, bridge candidates and descriptions."""

from __future__ import annotations

import pytest
from ragroute.tools.entities import bridge_entities, comparison_entities, entity_spans, is_description

from tests.unit.test_node_expand_decompose import KISS, KISS_PROBE


def test_entity_spans_and_comparison_items():
    q = "Which director had the longest career, Alain Resnais or Scott Sidney?"
    assert comparison_entities(q) == ["Alain Resnais", "Scott Sidney"]
    assert "Alain Resnais" in entity_spans(q) and "Which" not in entity_spans(q)
    assert comparison_entities("Are Lithocarpus and Duranta both trees?") == ["Lithocarpus", "Duranta"]
    assert comparison_entities("How long do tokens last?") == []


@pytest.mark.parametrize(
    ("question", "items"),
    [
        ("who is younger Keith Bostic or Jerry Glanville ?", ["Keith Bostic", "Jerry Glanville"]),
        (
            "Which composer, Clara Schumann or Fanny Mendelssohn, wrote more songs?",
            ["Clara Schumann", "Fanny Mendelssohn"],
        ),
        (
            "The Basset Hound and Border Collie were originally bred for what activity?",
            ["Basset Hound", "Border Collie"],
        ),
        ("Which actor do American Beauty and American Beauty have in common?", ["American Beauty"] * 2),
        ("Is Lhotse a mountain and Ama Dablam a mountain peak?", ["Lhotse", "Ama Dablam"]),
        ("Is Paris the capital of France?", []),
        # a claim that two things are so is a statement to check, not a comparison question
        ("ATM and Rad3 related protein are critical for sensing DNA damage.", []),
    ],
)
def test_comparison_items_without_a_trailing_or_clause(question, items):
    assert comparison_entities(question) == items


def test_descriptions_are_not_bridge_names():
    for span in ("1949 American", "27 February", "German", "14th", "romantic"):
        assert is_description(span), span
    for span in ("Shirley Temple", "A41", "Bank of China Tower", "Strasbourg"):
        assert not is_description(span), span


def test_bridge_prefers_names_the_corpus_holds_as_documents():
    got = bridge_entities(KISS, KISS_PROBE, limit=3)
    assert got[0] == "Shirley Temple"  # a retrieved document's title
    assert "1945 American" not in got and "Kiss and Tell" not in got  # a description; the question's own
