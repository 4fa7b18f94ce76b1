"""Citation parsing/repair and the offline sentence-level faithfulness score.

Support of one answer sentence = 0.5 * (best cosine to a sentence of its cited sources, MiniLM)
+ 0.5 * (share of its content words found in those sources). Copied sentences score ~1; a claim whose
words are not in the cited text scores low whatever its fluency.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ragroute.tools.extractive import content_terms, overlap
from ragroute.tools.sentences import split_sentences

CITE = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_MARK_AFTER_END = re.compile(r"([.!?])\s*((?:\[\d+(?:\s*,\s*\d+)*\]\s*)+)(?=\s|$)")


@dataclass
class SentenceSupport:
    """How well one answer sentence is backed by the sources it cites."""

    sentence: str
    cited: list[int]
    support: float
    similarity: float
    coverage: float


def answer_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """Answer split into sentences, each with the [n] numbers it carries."""
    out = []
    answer = _MARK_AFTER_END.sub(
        lambda m: f" {m.group(2).strip()}{m.group(1)} ", answer
    )  # "x. [1]" -> "x [1]."
    for sentence in split_sentences(answer):
        nums = [int(n) for group in CITE.findall(sentence) for n in re.split(r"\s*,\s*", group)]
        out.append((sentence, list(dict.fromkeys(nums))))
    return out


def strip_citations(sentence: str) -> str:
    """The sentence without its [n] markers."""
    return CITE.sub("", sentence).strip()


def _support(
    claim: str, cited: list[int], by_n: dict[int, dict], embed: Callable[[list[str]], np.ndarray]
) -> SentenceSupport:
    texts = [by_n[n].get("text", "") for n in cited if n in by_n]
    if not texts or not content_terms(claim):
        return SentenceSupport(claim, cited, 0.0, 0.0, 0.0)
    pieces = [s for t in texts for s in (split_sentences(t) or [t])]
    if " ".join(claim.split()) in {" ".join(p.split()) for p in pieces}:
        # a verbatim copy (every extractive sentence; a wrapped line joined by one space): cos(x, x), no
        # model call needed
        similarity = 1.0
    else:
        vectors = embed([claim, *pieces])
        similarity = float(np.max(vectors[1:] @ vectors[0]))
    coverage = overlap(content_terms(claim), " ".join(texts))
    return SentenceSupport(claim, cited, 0.5 * max(similarity, 0.0) + 0.5 * coverage, similarity, coverage)


def score_answer(
    answer: str, sources: list[dict], embed: Callable[[list[str]], np.ndarray]
) -> list[SentenceSupport]:
    """Support of every answer sentence against the sources it cites (uncited sentences score 0)."""
    by_n = {int(s["n"]): s for s in sources}
    return [_support(strip_citations(s), nums, by_n, embed) for s, nums in answer_sentences(answer)]


def repair_citations(
    answer: str,
    sources: list[dict],
    embed: Callable[[list[str]], np.ndarray],
    *,
    min_support: float = 0.5,
) -> tuple[str, list[int], list[str]]:
    """Drop [n] that name no source; cite the best source for uncited claims or drop them.

    Returns (repaired answer, cited source numbers in order, notes describing each repair).
    """
    valid = {int(s["n"]) for s in sources}
    by_n = {int(s["n"]): s for s in sources}
    notes: list[str] = []
    kept: list[str] = []
    for sentence, nums in answer_sentences(answer):
        claim = strip_citations(sentence)
        good = [n for n in nums if n in valid]
        if len(good) < len(nums):
            notes.append(f"removed unknown citation(s) {sorted(set(nums) - valid)}")
        if not good:
            if not content_terms(claim):
                continue
            ranked = sorted(((_support(claim, [n], by_n, embed).support, n) for n in valid), reverse=True)
            if ranked and ranked[0][0] >= min_support:
                good = [ranked[0][1]]
                notes.append(f"added citation [{good[0]}] to an uncited sentence")
            else:
                notes.append(f"dropped uncited, unsupported sentence: {claim[:60]!r}")
                continue
        body = claim.rstrip()
        end = body[-1] if body and body[-1] in ".!?" else "."
        body = body.rstrip(".!?")
        kept.append(f"{body} {''.join(f'[{n}]' for n in good)}{end}")
    cited = list(dict.fromkeys(n for s in kept for _, ns in answer_sentences(s) for n in ns))
    return " ".join(kept), cited, notes
