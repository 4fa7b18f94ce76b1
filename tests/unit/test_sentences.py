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


def test_lines_join_a_hard_wrapped_sentence() -> None:
    """Issue 12: a line break before "1 percent" split the sentence in two."""
    text = "Page when the error rate exceeds\n1 percent for five minutes. Warnings go to the\nteam channel."
    assert split_sentences(text) == [
        "Page when the error rate exceeds\n1 percent for five minutes.",  # cut from the text as it is
        "Warnings go to the\nteam channel.",
    ]
    bullet = "- Fixed a deadlock when more than\n  500 workflows shared one schedule.\n- Timeout is 1 hour."
    assert split_sentences(bullet) == [
        "Fixed a deadlock when more than\n  500 workflows shared one schedule.",
        "Timeout is 1 hour.",
    ]


def test_lines_keep_list_items_paragraphs_and_closed_lines_apart() -> None:
    steps = "Steps after a page\n1. Open the dashboard\n2) Check the logs\n- restart the worker"
    assert split_sentences(steps) == [
        "Steps after a page",
        "Open the dashboard",
        "Check the logs",
        "restart the worker",
    ]
    # a blank line, a heading or a finished sentence ends the line; an upper-case start is a new line
    text = "Limit raised to\n\n90 days\n## Notes\nfor tokens\nIt ended.\n2026 was next\nOrbit Labs"
    assert split_sentences(text) == [
        "Limit raised to",
        "90 days",
        "for tokens",
        "It ended.",
        "2026 was next",
        "Orbit Labs",
    ]
