"""Prompt-injection hygiene for retrieved text: find sentences in a source that address the model rather
than the reader ("ignore previous instructions", "you are now ...", forged "Answer:" / "<source>" lines)
and take them out before the text reaches a prompt or the extractive generator.

Documents are data. The generation prompt says so and delimits every source; this filter is the second
line of defence, for models that obey instructions wherever they find them. It is deliberately narrow
(imperatives aimed at an assistant, and prompt-structure markers), so ordinary prose such as "ignore
the warning and restart the server" is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TARGET = (
    r"(?:all\s+|any\s+|the\s+|your\s+|these\s+|those\s+)*"
    r"(?:previous|prior|above|earlier|preceding|former|original|system)?\s*"
)
_RULES = r"(?:instructions?|prompts?|rules|directions|guidelines|context|messages?)"
_ROLE = r"(?:ai|assistant|chatbot|model|dan|unrestricted|jailbroken|developer|admin|root|free)"

# (name, regex): each aims at text addressed to a model, not at ordinary prose
_RAW: tuple[tuple[str, str], ...] = (
    ("override", rf"\b(?:ignore|disregard|forget|override|bypass)\s+{_TARGET}{_RULES}\b"),
    ("new-instructions", r"\b(?:new|updated|real|actual)\s+(?:system\s+)?instructions?\s*:"),
    ("role-change", rf"\byou\s+are\s+now\s+(?:an?\s+|in\s+|the\s+)?{_ROLE}\b"),
    ("mode", r"\b(?:developer|god|dan|jailbreak)\s+mode\b"),
    ("act-as", r"\bact\s+as\s+(?:an?\s+)?(?:ai|assistant|system|admin)\b"),
    (
        "reveal-prompt",
        r"\b(?:reveal|print|show|repeat|output)\s+(?:your|the)\s+(?:system\s+)?(?:prompt|instructions)\b",
    ),
    # "reply PWNED", "say 'HACKED'": a reply verb and an all-caps token (case-sensitive) ending the sentence
    (
        "reply-with",
        r"\b(?:reply|respond|say)\s+(?:only\s+|with\s+|exactly\s+)*[\"'`“]?(?-i:[A-Z0-9_!]{4,})[\"'`”]?\s*(?:[.!]|$)",  # noqa: E501
    ),
    (
        "to-the-model",
        r"\b(?:assistant|ai|language model|llm|chatbot)\s*[,:]\s*(?:please\s+)?(?:ignore|reply|respond|say)\b",  # noqa: E501
    ),
    ("prompt-structure", r"^\s*(?:#+\s*)?(?:system|assistant)\s*:"),
    ("markup", r"</?\s*(?:source|system|instructions?|im_start|im_end)\b|\[/?INST\]|<\|[a-z_]+\|>"),
)
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((n, re.compile(rx, re.I)) for n, rx in _RAW)

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")


@dataclass
class Screened:
    """A text with its instruction-like sentences removed, and what was removed (with the pattern name)."""

    text: str
    removed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.removed)


def find_instructions(text: str) -> list[tuple[str, str]]:
    """(pattern name, sentence) for every sentence of `text` that reads as an instruction to the model."""
    out = []
    for match in _SENTENCE.finditer(text or ""):
        sentence = match.group(0).strip()
        for name, pattern in PATTERNS:
            if sentence and pattern.search(sentence):
                out.append((name, sentence))
                break
    return out


def screen(text: str) -> Screened:
    """`text` minus its instruction-like sentences (whitespace kept tidy); unchanged when none are found."""
    found = find_instructions(text)
    if not found:
        return Screened(text)
    cleaned = text
    for _, sentence in found:
        cleaned = cleaned.replace(sentence, " ", 1)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    cleaned = re.sub(r"\n\s*\n\s*\n+", "\n\n", cleaned).strip()
    return Screened(cleaned, found)
