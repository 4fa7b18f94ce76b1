"""tools.sentences: one splitter returning spans, three styles (lines, prose, cited), text cut from spans."""

from __future__ import annotations

import pytest
from ragroute.tools.sentences import sentence_spans, split_sentences


def test_prose_respects_abbreviations_and_decimals() -> None:
    text = (
        "Dr. Smith measured 3.5 mg, e.g. in mice. It worked! Did it? Yes (see Fig. 2). next lower. "
        "The U.S. Army and J. Doe agreed."
    )
    spans = [text[s:e] for s, e in sentence_spans(text, "prose")]
    assert spans == [
        "Dr. Smith measured 3.5 mg, e.g. in mice.",
        "It worked!",
        "Did it?",
        "Yes (see Fig. 2). next lower.",
        "The U.S. Army and J. Doe agreed.",
    ]


def test_lines_drop_headings_rules_bullets_and_fragments() -> None:
    text = (
        "# Title\n\nFirst point is here. Second one.\n---\n- Third sentence follows.\n2) x\n"
        '  "Quoted." Then more.'
    )
    assert split_sentences(text) == [
        "First point is here.",
        "Second one.",
        "Third sentence follows.",
        '"Quoted.',  # the closing quote goes with the gap, as it always did
        "Then more.",
    ]
    assert split_sentences("") == [] and split_sentences(None) == []  # type: ignore[arg-type]


def test_spans_point_into_the_text() -> None:
    text = "  - Alpha is first.  Beta follows!\r\nGamma ends"
    spans = sentence_spans(text)
    assert (
        [text[s:e] for s, e in spans]
        == split_sentences(text)
        == ["Alpha is first.", "Beta follows!", "Gamma ends"]
    )
    assert spans[0] == (4, 19)


def test_cited_keeps_markers_with_the_sentence_before() -> None:
    assert split_sentences("First claim. [1] Second claim [2]. Third.", "cited") == [
        "First claim. [1]",
        "Second claim [2].",
        "Third.",
    ]
    assert split_sentences("  One. [1][2]  ", "cited") == ["One. [1][2]"]
    assert split_sentences("   ", "cited") == []


def test_unknown_style() -> None:
    with pytest.raises(ValueError, match="style='words' is unknown; options: lines, prose, cited"):
        sentence_spans("a", "words")  # type: ignore[arg-type]
