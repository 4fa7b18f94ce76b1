"""Deterministic offline answer generator: select the supporting sentences and stitch them with [n] cites.

Used when no LLM is configured (generator name "extractive-offline"). It never writes a word that is not
in a source; when no sentence is similar enough to the question it abstains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

GENERATOR_NAME = "extractive-offline"

_SENT_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=[-*#|] )")
_BULLET = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-.]*[A-Za-z0-9]|[A-Za-z0-9]")
STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being do
    does did doing have has had having it its this that these those there here what which who whom whose when
    where why how i you he she we they me him her us them my your his our their not no nor so than too very
    can could should would will shall may might must about into over under again further once all any both
    each few more most other some such only own same just also than s t don isn aren wasn weren""".split()
)


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (punctuation + capital, line breaks, list items); drops empties and
    markdown headings (a heading names a topic, it states nothing)."""
    out: list[str] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or set(line) <= set("-|=*_: "):
            continue
        line = _BULLET.sub("", line)
        out.extend(p.strip() for p in _SENT_SPLIT.split(line) if p and len(p.strip()) > 1)
    return out


def content_terms(text: str) -> set[str]:
    """Lower-cased words minus stopwords and 1-letter tokens."""
    return {w.lower().strip(".") for w in _WORD.findall(text) if w.lower() not in STOPWORDS and len(w) > 1}


def overlap(query_terms: set[str], text: str) -> float:
    """Share of query terms that occur in text (prefix match of 5 chars tolerates inflections)."""
    if not query_terms:
        return 0.0
    terms = content_terms(text)
    stems = {t[:5] for t in terms}
    hit = sum(1 for q in query_terms if q in terms or (len(q) > 4 and q[:5] in stems))
    return hit / len(query_terms)


def heading_of(item: dict) -> str:
    """ "Title Section" of a hit or source (top-level keys or metadata), the context a sentence omits."""
    meta = item.get("metadata") or {}
    title = str(item.get("title") or meta.get("title") or "")
    section = str(item.get("section") or meta.get("section") or "")
    parts = [title] if title else []
    if section and section != title:
        parts.append(section)
    return " ".join(parts)


def in_context(heading: str, sentence: str) -> str:
    """The text embedded for a sentence: its heading in front (shared by reranker and generator, so the
    generator reuses the reranker's cached embeddings)."""
    return f"{heading}: {sentence}" if heading else sentence


@dataclass
class ScoredSentence:
    """One candidate sentence from source number n."""

    text: str
    n: int
    score: float
    similarity: float
    overlap: float


@dataclass
class ExtractiveAnswer:
    """The stitched answer (or an abstention) with what it was built from."""

    text: str
    cited: list[int] = field(default_factory=list)
    sentences: list[ScoredSentence] = field(default_factory=list)
    best_score: float = 0.0
    abstained: bool = False


def score_sentences(
    question: str, sources: list[dict], embed: Callable[[list[str]], np.ndarray]
) -> list[ScoredSentence]:
    """Every sentence of every numbered source, scored by similarity and term overlap with the question."""
    candidates: list[tuple[str, int, str]] = []
    for src in sources:
        heading = heading_of(src)
        for sentence in split_sentences(src.get("text", "")):
            if len(content_terms(sentence)) >= 2:
                candidates.append((sentence, int(src["n"]), heading))
    if not candidates:
        return []
    # the heading (title > section) is context the sentence leaves implicit ("it", "this release")
    vectors = embed([question, *[in_context(h, c) for c, _, h in candidates]])
    sims = vectors[1:] @ vectors[0]
    q_terms = content_terms(question)
    scored = []
    for (sentence, n, heading), sim in zip(candidates, sims, strict=True):
        ov = overlap(q_terms, f"{heading} {sentence}")
        scored.append(ScoredSentence(sentence, n, 0.6 * float(sim) + 0.4 * ov, float(sim), ov))
    return sorted(scored, key=lambda s: -s.score)


def generate_extractive(
    question: str,
    sources: list[dict],
    embed: Callable[[list[str]], np.ndarray],
    *,
    abstain_text: str,
    min_score: float = 0.35,
    max_sentences: int = 3,
    strict: bool = False,
) -> ExtractiveAnswer:
    """Pick up to `max_sentences` supporting sentences (strict: fewer, closer to the best) and cite them."""
    scored = score_sentences(question, sources, embed)
    best = scored[0].score if scored else 0.0
    if best < min_score:
        return ExtractiveAnswer(abstain_text, best_score=best, abstained=True)
    keep_ratio, limit = (0.9, max(1, max_sentences - 1)) if strict else (0.75, max_sentences)
    chosen: list[ScoredSentence] = []
    seen_terms: list[set[str]] = []
    for cand in scored:
        if cand.score < max(min_score, best * keep_ratio) or len(chosen) >= limit:
            break
        terms = content_terms(cand.text)
        if any(len(terms & prev) / max(1, len(terms | prev)) > 0.6 for prev in seen_terms):
            continue  # near-duplicate of a sentence already chosen
        chosen.append(cand)
        seen_terms.append(terms)
    text = " ".join(f"{_strip_end(c.text)} [{c.n}]." for c in chosen)
    return ExtractiveAnswer(text, sorted({c.n for c in chosen}), chosen, best)


def _strip_end(sentence: str) -> str:
    return sentence.rstrip().rstrip(".!?;:,")
