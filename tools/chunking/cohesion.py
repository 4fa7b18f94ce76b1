"""Lexical cohesion between adjacent text units: where a new topic starts (TextTiling-style depth scores)."""

from __future__ import annotations

import math
from collections import Counter

from ragroute.tools.analyzer import ENGLISH_STOPWORDS, Analyzer

# words that carry no topic on their own, on top of the BM25 analyzer's stopwords
_COHESION_STOPWORDS = frozenset(
    "use used using one two new via per within without however thus therefore".split()
)
_COHESION_ANALYZER = Analyzer(
    stopwords=ENGLISH_STOPWORDS | _COHESION_STOPWORDS, min_len=3
)  # same lowercasing, Unicode word split and light stemming as BM25


def _terms(text: str) -> Counter[str]:
    """Content-word counts (stopwords and numbers dropped, lightly stemmed), for lexical cohesion."""
    return Counter(t for t in _COHESION_ANALYZER.tokens(text) if not t.isdigit())


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    return dot / (math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values())))


def topic_boundaries(
    texts: list[str], *, window: int = 2, max_similarity: float = 0.1, min_depth: float = 0.15
) -> set[int]:
    """Indices i where a new topic starts at texts[i] (TextTiling-style depth scores, lexical cohesion).

    The gap before i compares the `window` units before it with the `window` units after it by cosine
    similarity of content-word counts. A gap is a boundary when it is a local minimum, its similarity is
    at most `max_similarity` (the two sides share almost no vocabulary), and its depth -- how far it dips
    below the highest similarity reached climbing away from it on each side -- is at least `min_depth`.
    An edge gap has only one side to climb, so it needs a deeper dip.
    """
    n = len(texts)
    if n < 3:
        return set()
    terms = [_terms(t) for t in texts]
    sims = []
    for i in range(1, n):
        left: Counter[str] = Counter()
        right: Counter[str] = Counter()
        for t in terms[max(0, i - window) : i]:
            left.update(t)
        for t in terms[i : i + window]:
            right.update(t)
        sims.append(_cosine(left, right))
    out = set()
    for g, s in enumerate(sims):
        if s > max_similarity:
            continue
        if (g > 0 and sims[g - 1] < s) or (g + 1 < len(sims) and sims[g + 1] < s):
            continue  # not a local minimum
        lpeak = rpeak = s
        for x in reversed(sims[:g]):
            if x < lpeak:
                break
            lpeak = x
        for x in sims[g + 1 :]:
            if x < rpeak:
                break
            rpeak = x
        if (lpeak - s) + (rpeak - s) >= min_depth:
            out.add(g + 1)
    return out
