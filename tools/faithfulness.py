"""Citation parsing/repair and the offline sentence-level faithfulness score.

Support of one answer sentence = 0.5 * (best cosine to a sentence of its cited sources, MiniLM)
+ 0.5 * (share of its content words found in those sources). Copied sentences score ~1; a claim whose
words are not in the cited text scores low whatever its fluency.

Fluent paraphrase scores well on both halves even when it swaps in one invented detail ("use the
`orbit-log` command"), so a claim must also be grounded: every command or code-like token, number and
name it states must occur in the cited sources (their title, section and version count), and it must not
negate what its closest source sentence states, nor drop that sentence's negation. An ungrounded claim's
support is capped at UNGROUNDED_CAP, below any useful faithfulness threshold.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ragroute.tools.extractive import STOPWORDS, content_terms, overlap
from ragroute.tools.sentences import split_sentences

UNGROUNDED_CAP = 0.25
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
    ungrounded: list[str] = field(default_factory=list)
    """The claim's commands, numbers, names or negation its cited sources lack (empty: grounded)."""


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
    flat = [" ".join(p.split()) for p in pieces]
    if " ".join(claim.split()) in flat:
        # a verbatim copy (every extractive sentence; a wrapped line joined by one space): cos(x, x), no
        # model call needed
        similarity, closest = 1.0, pieces[flat.index(" ".join(claim.split()))]
    else:
        vectors = embed([claim, *pieces])
        cosines = vectors[1:] @ vectors[0]
        similarity, closest = float(np.max(cosines)), pieces[int(np.argmax(cosines))]
    coverage = overlap(content_terms(claim), " ".join(texts))
    support = 0.5 * max(similarity, 0.0) + 0.5 * coverage
    labels = [_labels(by_n[n]) for n in cited if n in by_n]
    # a verbatim copy is grounded by definition; anything else must name only what its sources name
    missing = [] if similarity == 1.0 else ungrounded(claim, " ".join([*texts, *labels]), closest)
    if missing:
        support = min(support, UNGROUNDED_CAP)
    return SentenceSupport(claim, cited, support, similarity, coverage, missing)


def _labels(source: dict) -> str:
    """The title, section, version and date a prompt shows beside a source's text."""
    meta = source.get("metadata") or {}
    keys = ("title", "section", "version", "last_updated")
    return " ".join(str(v) for v in (*(source.get(k) for k in keys), *(meta.get(k) for k in keys)) if v)


# --------------------------------------------------------------------------- grounding of specifics

_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
} | {w: str(10 * i) for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), 3)}
_NUMBER_WORDS |= {"hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000"}
# "one" is as often a pronoun ("one of them") as a count: it grounds a source's count, never needs one
_CLAIM_NUMBER_WORDS = {w: n for w, n in _NUMBER_WORDS.items() if w != "one"}
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_BACKTICKED = re.compile(r"`([^`]+)`")
_EDGE = "\"'.,;:!?()[]{}<>*`"
_CODE_CHAR = re.compile(r"[-_./:=@\\]")
_NEGATION = frozenset("not no never none cannot nothing neither nor".split())
# words that give a sentence negative force without negating it ("printed without limit"): a claim that
# carries one, or negates a source sentence that does, is not taken as contradicting it
_NEGATIVE = _NEGATION | frozenset(
    "without only rejected refused denied unsupported unavailable disabled prohibited forbidden fails failed "
    "lacks instead except removed deprecated longer".split()
)
_CLAUSE = frozenset("and but or because which while when if since until unless so that".split())
_SKIP_AFTER_NEGATION = frozenset("be been being is are was were do does did have has had longer able".split())


def _tokens(text: str) -> list[str]:
    """Whitespace tokens with edge punctuation and a possessive 's removed."""
    out = []
    for raw in text.split():
        tok = raw.strip(_EDGE)
        if tok.lower().endswith(("'s", "’s")):
            tok = tok[:-2]
        if tok:
            out.append(tok)
    return out


def _numbers(text: str, words: dict[str, str]) -> set[str]:
    """The numbers a text states: digit groups (1,000 -> 1000; 2.10.0 also as 2.10 and 2) and number words."""
    found: set[str] = set()
    for match in _NUMBER.findall(text):
        plain = match.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+", match) else match
        found.add(plain.lstrip("0") or "0")
        parts = re.split(r"[.:]", plain)
        found.update(".".join(parts[:i]).lstrip("0") or "0" for i in range(1, len(parts)))
    found.update(words[w] for w in re.findall(r"[a-z]+", text.lower()) if w in words)
    return found


def _vocabulary(source: str) -> tuple[set[str], list[str]]:
    """Lower-cased tokens of a source (dotted/slashed paths also by their prefixes and parts) and its
    lower-cased token sequence."""
    seq = [t.lower() for t in _tokens(source) if any(c.isalnum() for c in t)]
    vocab = set(seq)
    for tok in seq:
        for sep in ".=/:":
            parts = tok.split(sep)
            vocab.update(sep.join(parts[:i]) for i in range(1, len(parts) + 1))
            vocab.update(p for p in parts if p)
        vocab.add(tok.rstrip("/"))
    return vocab, seq


def _in_source(token: str, vocab: set[str], seq: list[str]) -> bool:
    """Whether a claim token occurs in the source, a hyphenated one also as its parts in a row
    ("self-hosted" ~ "self hosted") and an acronym as the initials of words in a row."""
    low = token.lower()
    if low in vocab or low.rstrip("/") in vocab:
        return True
    parts = [p for p in re.split(r"[-_]", low) if p]
    if len(parts) > 1:
        n = len(parts)
        if any(seq[i : i + n] == parts for i in range(len(seq) - n + 1)):
            return True
    if token.isupper() and token.isalpha() and 2 <= len(token) <= 6:
        n = len(token)
        initials = "".join(w[:1] for w in seq)
        return low in initials and any(initials[i : i + n] == low for i in range(len(seq) - n + 1))
    return False


def _specific(token: str, first: bool) -> bool:
    """Whether a claim token names something exact: code-like, digits, or a name (capitalised after the
    first word, all capitals, or mixed case)."""
    if not any(c.isalnum() for c in token):
        return False  # punctuation ("--", "/"): nothing to ground
    if _CODE_CHAR.search(token.strip("-")) or token.startswith("-") and len(token) > 1:
        return not re.fullmatch(r"(?:[A-Za-z]\.){2,}", token + ".")  # "e.g", "i.e": abbreviations
    if any(c.isdigit() for c in token):
        return False  # numbers are compared as numbers
    if not token[:1].isalpha():
        return False
    mixed = any(c.isupper() for c in token[1:]) and any(c.islower() for c in token)
    capital = token[:1].isupper() and not first and token.lower() not in STOPWORDS and token != "I"
    return mixed or capital or (token.isupper() and len(token) >= 2)


def _negated(words: list[str]) -> bool:
    return any(w in _NEGATION or w.endswith("n't") for w in words)


def _negated_phrases(sentence: str) -> list[list[str]]:
    """The content words each negation of a sentence governs, up to the end of its clause."""
    phrases = []
    words = sentence.split()
    for i, raw in enumerate(words):
        w = raw.lower().strip(_EDGE)
        if w not in _NEGATION and not w.endswith("n't"):
            continue
        phrase: list[str] = []
        for nxt in words[i + 1 : i + 6]:
            x = nxt.lower().strip(_EDGE)
            if x in _CLAUSE:
                break
            if x and x not in _SKIP_AFTER_NEGATION and x not in STOPWORDS:
                phrase.append(x)
            if nxt[-1:] in ",;:.!?" or len(phrase) == 3:
                break
        if phrase:
            phrases.append(phrase)
    return phrases


def _negation_clash(claim: str, closest: str) -> bool:
    """Whether the claim negates its closest source sentence, or states plainly what that sentence
    negates (every content word of a negated phrase, e.g. "is supported" against "is no longer
    supported")."""
    said = [w.lower() for w in _tokens(claim)]
    negative = any(w in _NEGATIVE or w.endswith("n't") for w in said)
    if _negated(said):
        return not any(w in _NEGATIVE or w.endswith("n't") for w in (x.lower() for x in _tokens(closest)))
    if negative:
        return False
    stems = {w[:5] for w in said}
    return any(all(w[:5] in stems for w in phrase) for phrase in _negated_phrases(closest))


def ungrounded(claim: str, source: str, closest: str | None = None) -> list[str]:
    """The claim's specifics the source lacks: backticked or code-like tokens (commands, flags, paths,
    settings), numbers, names, and "negation" when it contradicts `closest` (its nearest source sentence)."""
    vocab, seq = _vocabulary(source)
    exact = set(_tokens(source.replace("`", " ")))
    missing: list[str] = []
    for span in _BACKTICKED.findall(claim):
        # code is exact: every token of a backticked span, as written, occurs in the source
        missing += [
            t
            for t in _tokens(span)
            if any(c.isalnum() for c in t) and t not in exact and t.lower() not in vocab
        ]
    plain = _BACKTICKED.sub(" ", claim)
    tokens = _tokens(plain)
    first = next((i for i, t in enumerate(tokens) if t[:1].isalpha()), 0)
    missing += [t for i, t in enumerate(tokens) if _specific(t, i == first) and not _in_source(t, vocab, seq)]
    have = _numbers(source, _NUMBER_WORDS)
    missing += sorted(n for n in _numbers(plain, _CLAIM_NUMBER_WORDS) if n not in have)
    if closest is not None and _negation_clash(claim, closest):
        missing.append("negation")
    return list(dict.fromkeys(missing))


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
