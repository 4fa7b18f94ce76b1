"""Sentence splitting: (start, end) spans of the sentences of a text; the text variant is cut from them.

One splitter, three documented styles, because the callers need different cuts and each keeps its output:
- "lines" (answers, faithfulness, sentence vectors): line by line; markdown headings and rule lines are
  dropped, list bullets stripped, fragments of one character dropped; a hard-wrapped line (the line before
  ends no sentence, this one starts lower-case or with a digit, no bullet) continues the sentence;
- "prose" (chunking): every character belongs to a sentence; abbreviations ("e.g.", "Dr."), initials
  ("J. Smith") and a lower-case continuation do not end one;
- "cited" (answer metrics): citation markers ("[1][2]") after a full stop stay with the sentence before.
"""

from __future__ import annotations

import re
from typing import Literal

Span = tuple[int, int]
SentenceStyle = Literal["lines", "prose", "cited"]
STYLES: tuple[SentenceStyle, ...] = ("lines", "prose", "cited")

_LINE_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=[-*#|] )")
_BULLET = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
_RULE_CHARS = frozenset("-|=*_: ")
_CLOSED_LINE = re.compile(r"[.!?][\"')\]]*$")  # a line that ends a sentence
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)")
ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al fig figs eq eqs dr mr mrs ms prof st no vol pp ca approx inc ltd jr sr resp".split()
)
_CITED_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_LEAD_CITES = re.compile(r"^(?:\[\d+\]\s*)+")


def sentence_spans(text: str, style: SentenceStyle = "lines") -> list[Span]:
    """(start, end) offsets of the sentences of `text`, cut in the given style (see the module docstring)."""
    if style == "lines":
        return _line_spans(text or "")
    if style == "prose":
        return _prose_spans(text)
    if style == "cited":
        return _cited_spans(text)
    raise ValueError(f"style={style!r} is unknown; options: {', '.join(STYLES)}")


def split_sentences(text: str, style: SentenceStyle = "lines") -> list[str]:
    """The sentences of `text` as strings (`sentence_spans` cut out of the text)."""
    return [text[s:e] for s, e in sentence_spans(text, style)]


def trim_span(text: str, start: int, end: int) -> Span:
    """The span without the whitespace at its ends."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(pattern: re.Pattern[str], text: str, start: int, end: int) -> list[Span]:
    """Spans of text[start:end] between the matches of `pattern` (as `pattern.split` cuts it)."""
    out: list[Span] = []
    prev = start
    for m in pattern.finditer(text, start, end):
        out.append((prev, m.start()))
        prev = m.end()
    out.append((prev, end))
    return out


def _line_spans(text: str) -> list[Span]:
    out: list[Span] = []
    for s, e in _logical_lines(text):
        for ps, pe in _pieces(_LINE_SPLIT, text, s, e):
            ps, pe = trim_span(text, ps, pe)
            if pe - ps > 1:
                out.append((ps, pe))
    return out


def _logical_lines(text: str) -> list[Span]:
    """Spans of the kept lines (bullets stripped), a wrapped line joined to the one it continues.

    A line continues the previous one when that one does not end a sentence and this one starts with a
    lower-case letter or a digit ("exceeds" / "1 percent"): a hard-wrapped sentence. A bullet ("1. Install",
    "- item"), a blank line, a heading or a rule line always starts anew.
    """
    lines: list[Span] = []
    pos = 0
    joinable = False  # the last kept line is open: no blank/heading/rule since, and no sentence end
    for raw in text.splitlines(keepends=True):
        line_start, pos = pos, pos + len(raw)
        body = raw.splitlines()[0]
        start, end = trim_span(text, line_start, line_start + len(body))
        line = text[start:end]
        if not line or line.startswith("#") or set(line) <= _RULE_CHARS:
            joinable = False
            continue
        bullet = _BULLET.match(line)
        if joinable and not bullet and (line[0].islower() or line[0].isdigit()):
            lines[-1] = (lines[-1][0], end)
        else:
            lines.append((start + bullet.end(), end) if bullet else (start, end))
        joinable = _CLOSED_LINE.search(line) is None
    return lines


def _prose_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        word = re.search(r"(\S+)$", text[start : match.start() + 1])
        token = word.group(1).rstrip(".!?").lower().lstrip("(\"'[") if word else ""
        if match.group(0).startswith(".") and (
            token in ABBREVIATIONS
            or (len(token) == 1 and token.isalpha())  # an initial: "J. Smith"
            or re.fullmatch(r"(?:[a-z]{1,2}\.)+[a-z]{1,2}", token) is not None  # "U.S.", "Ph.D."
        ):
            continue
        nxt = re.match(r"\s+(\S)", text[end:])
        if nxt and nxt.group(1).islower():
            continue
        if text[start:end].strip():
            spans.append(trim_span(text, start, end))
        start = end
    if text[start:].strip():
        spans.append(trim_span(text, start, len(text)))
    return spans


def _cited_spans(text: str) -> list[Span]:
    start, end = trim_span(text, 0, len(text))
    merged: list[Span] = []
    for s, e in _pieces(_CITED_SPLIT, text, start, end):
        s, e = trim_span(text, s, e)
        if s == e:
            continue
        lead = _LEAD_CITES.match(text[s:e])
        if merged and lead:
            merged[-1] = (merged[-1][0], trim_span(text, s, s + lead.end())[1])
            s, e = trim_span(text, s + lead.end(), e)
        if s < e:
            merged.append((s, e))
    return merged
