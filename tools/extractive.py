"""Deterministic offline answer generator: select the supporting sentences and stitch them with [n] cites.

Used when no LLM is configured (generator name "extractive-offline"). It never writes a word that is not
in a source; when the answerability model (tools/answerability.py, over `answer_features`) doubts that the
sources answer the question, it abstains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ragroute.tools.answerability import FEATURES, default_model
from ragroute.tools.learned import LogisticModel
from ragroute.tools.sentences import sentence_spans

GENERATOR_NAME = "extractive-offline"
ANSWERABILITY_TOP = 5  # candidates (by score) whose bare wording is checked: a few embeddings per query

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-.]*[A-Za-z0-9]|[A-Za-z0-9]")
STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being do
    does did doing have has had having it its this that these those there here what which who whom whose when
    where why how i you he she we they me him her us them my your his our their not no nor so than too very
    can could should would will shall may might must about into over under again further once all any both
    each few more most other some such only own same just also than s t don isn aren wasn weren""".split()
)


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


def title_and_section(item: dict) -> tuple[str, str]:
    """Title and section of a hit or source (top-level keys or metadata); section "" when it repeats
    the title."""
    meta = item.get("metadata") or {}
    title = str(item.get("title") or meta.get("title") or "")
    section = str(item.get("section") or meta.get("section") or "")
    return title, "" if section == title else section


def heading_of(item: dict) -> str:
    """ "Title Section" of a hit or source, the context a sentence omits."""
    return " ".join(part for part in title_and_section(item) if part)


def in_context(heading: str, sentence: str) -> str:
    """The text embedded for a sentence: its heading in front (shared by reranker and generator, so the
    generator reuses the reranker's cached embeddings)."""
    return f"{heading}: {sentence}" if heading else sentence


@dataclass
class ScoredSentence:
    """One candidate sentence from source number n (`asked`: the source's question it answers, or "")."""

    text: str
    n: int
    score: float
    similarity: float
    overlap: float
    asked: str = ""


_QUESTION_END = re.compile(r"\?[\"')\]]*$")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def is_question(sentence: str) -> bool:
    """Whether a source sentence asks instead of states (ends with "?"); it never answers anything."""
    return _QUESTION_END.search(sentence.rstrip()) is not None


def statements(text: str) -> list[tuple[str, str]]:
    """(sentence, the question it answers or "") for each sentence of `text` that is not a question.

    A sentence after a question sentence answers it (an FAQ entry "Q? A. A.", or "Why? Because ..."), up
    to the next question or the first paragraph break after the answer began: the question is the
    context the answer leaves implicit, as a section heading is for the sentences under it.
    """
    out: list[tuple[str, str]] = []
    asked, answered, prev_end = "", False, 0
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        if answered and _PARAGRAPH_BREAK.search(text, prev_end, start):
            asked = ""
        prev_end = end
        if is_question(sentence):
            asked, answered = " ".join(sentence.split()), False
            continue
        out.append((sentence, asked))
        answered = True
    return out


def topic_terms(source: dict) -> set[str]:
    """Content words of a source's title: the topic every sentence of the document shares."""
    return content_terms(title_and_section(source)[0])


def specific_terms(question: str, topic: set[str]) -> set[str]:
    """The question's content words that the topic (its source's title words) does not already hold: the
    specific ask; all of them when the title holds every one."""
    terms = content_terms(question)
    stems = {t[:5] for t in topic}
    specific = {t for t in terms if t not in topic and not (len(t) > 4 and t[:5] in stems)}
    return specific or terms


_ASKS_QUANTITY = re.compile(r"\bhow (?:many|much|long|old|far|tall|high|big|large|deep|often)\b", re.I)
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty"
    r"|hundreds?|thousands?|millions?|billions?|dozens?|half|once|twice|several)\b",
    re.I,
)


_ASKS_DATE = re.compile(r"^\s*when\b|\b(?:what|which) (?:year|date|day|month|century)\b", re.I)
_ASKS_PERSON = re.compile(r"^\s*(?:who|whom|whose)\b", re.I)
_DATE = re.compile(
    r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d"
    r"|\b\d{1,2} (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)|\bcentury\b",
    re.I,
)
_NAME = re.compile(r"(?<!^)(?<![.!?] )\b[A-Z][a-z]+")


def answer_type_found(question: str, sentence: str) -> float | None:
    """Whether the sentence holds the kind of thing the question asks for (a date for "when", a name not
    in the question for "who"); None when the question asks for no such kind."""
    if _ASKS_DATE.search(question):
        return 1.0 if _DATE.search(sentence) else 0.0
    if _ASKS_PERSON.search(question):
        asked = {w.lower() for w in _WORD.findall(question)}
        return 1.0 if any(m.group().lower() not in asked for m in _NAME.finditer(sentence)) else 0.0
    return None


def can_hold_answer(question: str, sentence: str) -> bool:
    """False when the question asks for a quantity ("how many ...") and the sentence states no number."""
    return not _ASKS_QUANTITY.search(question) or bool(_NUMBER.search(sentence))


def answer_features(
    question: str,
    scored: list[ScoredSentence],
    sources: list[dict],
    embed: Callable[[list[str]], np.ndarray],
    *,
    top: int = ANSWERABILITY_TOP,
) -> dict[str, float]:
    """What the answer-or-abstain model reads (names: tools/answerability.FEATURES).

    `score_sentences` reads a sentence with its document title in front, so any sentence of a document on
    the question's topic scores well. Here the title is also left out (a section heading stays: it says
    what the passage under it is about, e.g. "Breaking changes"): cosine(question, bare sentence) and the
    share of the question's specific terms (those the title lacks) the sentence holds, best of the `top`
    candidates; a sentence without a number cannot answer "how many".
    """
    candidates = scored[:top]
    out = dict.fromkeys(FEATURES, 0.0)
    specific = content_terms(question)
    out["question_terms"] = float(len(specific))
    out["asks_quantity"] = 1.0 if _ASKS_QUANTITY.search(question) else 0.0
    if not candidates:
        return out
    by_n = {int(s["n"]): s for s in sources}
    owners = [by_n.get(c.n, {}) for c in candidates]
    sections = [title_and_section(src)[1] for src in owners]
    texts = [in_context(sec, _with_question(c)) for c, sec in zip(candidates, sections, strict=True)]
    vectors = embed([question, *texts])
    sims = vectors[1:] @ vectors[0]
    out["best_score"] = candidates[0].score
    out["best_similarity"] = candidates[0].similarity
    out["best_overlap"] = candidates[0].overlap
    out["score_gap"] = candidates[0].score - (candidates[1].score if len(candidates) > 1 else 0.0)
    asked_terms = content_terms(question)
    bare: list[float] = []
    typed: list[float] = []
    for cand, src, section, text, sim in zip(candidates, owners, sections, texts, sims, strict=True):
        if not can_hold_answer(question, in_context(section, cand.text)):
            continue  # the number must be in the answer, not only in the question it answers
        specific = specific_terms(question, topic_terms(src))
        cover = overlap(specific, text)
        bare.append(0.6 * float(sim) + 0.4 * cover)
        out["bare_similarity"] = max(out["bare_similarity"], float(sim))
        out["specific_overlap"] = max(out["specific_overlap"], cover)
        out["specific_terms"] = max(out["specific_terms"], float(len(specific)))
        out["novel_terms"] = max(out["novel_terms"], float(len(content_terms(cand.text) - asked_terms)))
        found = answer_type_found(question, cand.text)
        if found is not None:
            typed.append(found)
    if bare:
        out["bare_score"] = max(bare)
        out["bare_score_top3"] = float(np.mean(sorted(bare, reverse=True)[:3]))
        out["has_candidate"] = 1.0
    # asks for a date or a person and no candidate holds one
    out["answer_type_missing"] = 1.0 if typed and max(typed) == 0.0 else 0.0
    return out


def _with_question(cand: ScoredSentence) -> str:
    """The sentence preceded by the source's question it answers (if any): what it is about."""
    return f"{cand.asked} {cand.text}" if cand.asked else cand.text


@dataclass
class ExtractiveAnswer:
    """The stitched answer (or an abstention) with what it was built from."""

    text: str
    cited: list[int] = field(default_factory=list)
    sentences: list[ScoredSentence] = field(default_factory=list)
    best_score: float = 0.0
    answerability: float | None = None  # probability that the sources answer the question
    features: dict[str, float] = field(default_factory=dict)
    abstained: bool = False


def score_sentences(
    question: str, sources: list[dict], embed: Callable[[list[str]], np.ndarray]
) -> list[ScoredSentence]:
    """Every statement sentence of every numbered source (questions are left out: they answer nothing),
    scored by similarity and term overlap with the question."""
    candidates: list[tuple[ScoredSentence, str]] = []
    for src in sources:
        heading = heading_of(src)
        for sentence, asked in statements(src.get("text", "")):
            if asked and asked.lower() in heading.lower():
                asked = ""  # the title asks it ("Why Is There Air?", an album): the heading says it already
            if len(content_terms(sentence)) >= 2:
                candidates.append((ScoredSentence(sentence, int(src["n"]), 0.0, 0.0, 0.0, asked), heading))
    if not candidates:
        return []
    # the heading (title > section) and the question a sentence answers are context the sentence leaves
    # implicit ("it", "this release", "Yes, when ...")
    vectors = embed([question, *[in_context(h, _with_question(c)) for c, h in candidates]])
    sims = vectors[1:] @ vectors[0]
    q_terms = content_terms(question)
    for (cand, heading), sim in zip(candidates, sims, strict=True):
        cand.overlap = overlap(q_terms, f"{heading} {_with_question(cand)}")
        cand.similarity = float(sim)
        cand.score = 0.6 * cand.similarity + 0.4 * cand.overlap
    return sorted((c for c, _ in candidates), key=lambda s: -s.score)


def generate_extractive(
    question: str,
    sources: list[dict],
    embed: Callable[[list[str]], np.ndarray],
    *,
    abstain_text: str,
    min_score: float = 0.35,
    min_answerability: float | None = None,
    check_answerable: bool = True,
    max_sentences: int = 3,
    strict: bool = False,
    model: LogisticModel | None = None,
) -> ExtractiveAnswer:
    """Pick up to `max_sentences` supporting sentences (strict: fewer, closer to the best) and cite them.

    Abstains when the best score is below `min_score` or, with `check_answerable`, when the answerability
    model's probability that the sources answer the question is below `min_answerability` (None: the
    model's own threshold, chosen by cross-validation)."""
    scored = score_sentences(question, sources, embed)
    best = scored[0].score if scored else 0.0
    if best < min_score:
        return ExtractiveAnswer(abstain_text, best_score=best, abstained=True)
    answerable, features = None, {}
    if check_answerable:
        model = model or default_model()
        features = answer_features(question, scored, sources, embed)
        answerable = model.probability(features)
        if answerable < (model.threshold if min_answerability is None else min_answerability):
            return ExtractiveAnswer(
                abstain_text, best_score=best, answerability=answerable, features=features, abstained=True
            )
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
    text = " ".join(f"{_strip_end(' '.join(c.text.split()))} [{c.n}]." for c in chosen)
    return ExtractiveAnswer(text, sorted({c.n for c in chosen}), chosen, best, answerable, features)


def _strip_end(sentence: str) -> str:
    return sentence.rstrip().rstrip(".!?;:,")
