"""Named entities in questions and evidence: capitalised spans, compared items, bridge candidates.

Pure text rules over plain strings and hit dicts; classify uses them as route features, decompose to
write sub-questions.
"""

from __future__ import annotations

import re

from ragroute.tools.extractive import STOPWORDS, content_terms, overlap
from ragroute.tools.sentences import split_sentences
from ragroute.tools.titles import base_title, hit_title, names_title

HOP1_DOCS = 2
MAX_BRIDGES = 2
TITLE_WEIGHT = 3.0  # a name that is also a retrieved document's title: as strong as the best sentence
_CAP_SPAN = re.compile(
    r"\b(?:[A-Z][\w'\-.]*|\d[\w\-.]*)(?:\s+(?:of|the|de|von|van|du|la)?\s*[A-Z][\w'\-.]*)*"
)
_QUOTED = re.compile(r"\"([^\"]{2,80})\"|“([^”]{2,80})”")
COMPARISON_CUE = re.compile(
    r"\b(or|both|either|neither|same|compare|compared|comparison|difference|differ|versus|vs\.?|"
    r"older|younger|earlier|later|first|longer|shorter|larger|smaller|bigger|higher|lower|more|fewer|less|"
    r"most|least|further|closer|taller)\b",
    re.I,
)
COMMON_CUE = re.compile(r"\b(both|same|common|share|shared|either|neither)\b", re.I)
QUESTION_WORDS = (
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "is",
    "are",
    "does",
    "do",
    "can",
)
_DESCRIPTIVE = re.compile(
    r"\d[\w\-.]*|(?:Jan|Febr)uary|March|April|May|June|July|August|(?:Sept|Nov|Dec)ember|October"
    r"|[A-Z][a-z]+(?:ian|ean|ese|ish|can)|German|French|Dutch|Greek|Swiss|Thai|Welsh",
)


def entity_spans(text: str) -> list[str]:
    """Capitalised multi-word spans and quoted titles, excluding a sentence-initial question word."""
    spans = [a or b for a, b in _QUOTED.findall(text)]
    for match in _CAP_SPAN.finditer(text):
        span = match.group(0).strip(" .,'")
        words = span.split()
        while words and words[0].lower() in STOPWORDS | set(QUESTION_WORDS):
            words = words[1:]
        span = " ".join(words)
        if span and not span.isdigit() and span.lower() not in STOPWORDS and span not in spans:
            spans.append(span)
    return spans


def comparison_entities(question: str) -> list[str]:
    """The compared items of "..., A or B?" / "both A and B" questions; [] when there are none."""
    q = question.strip().rstrip("?").strip()
    m = re.search(r"[,:]\s*(?:the\s+)?([^,]+?)\s+or\s+(?:the\s+)?([^,]+)$", q)
    if not m:  # "Which river, the Rhone or the Loire, is longer?"
        m = re.search(r"[,:]\s*(?:the\s+)?([^,]+?)\s+or\s+(?:the\s+)?([^,]+?)\s*,", q)
    if not m and question.rstrip().endswith("?"):  # "The Basset Hound and Border Collie
        # were originally bred for what activity?" (a question, not a claim that two things are so)
        m = re.match(
            r"(?!(?:Are|Were|Is|Was|Do|Does|Did|Have|Has|Had|Which|What|Who|When|Where|How)\b)"
            r"(?:[Tt]he\s+)?([A-Z][^,]*?)\s+and\s+(?:the\s+)?([A-Z][^,]*?)\s+"
            r"(?:were|are|have|had|both|share|shared)\b",
            q,
        )
    if not m:  # "Is Lyon a city and Provence a region?"
        m = re.match(
            r"(?:Is|Are|Was|Were)\s+(?:the\s+)?([A-Z][^,]*?)\s+(?:a|an|the)\s+[^,]+?\s+and\s+"
            r"(?:the\s+)?([A-Z][^,]*?)\s+(?:a|an|the)\s",
            q,
        )
    if not m:
        m = re.search(
            r"\b(?:both|between)\s+(?:the\s+)?(.+?)\s+and\s+(?:the\s+)?(.+?)(?:\s+(?:are|were|is|have|had|share|located|from|in)\b.*)?$",
            q,
        )
    if not m:
        m = re.search(
            r"\b(?:[Aa]re|[Ww]ere|[Dd]o|[Dd]id|[Ii]s|[Hh]ave)\s+(?:the\s+)?(.+?)\s+and\s+(?:the\s+)?(.+?)"
            r"\s+(?:both|the same|from the same|of the same|each)\b",
            q,
        )
    if not m and (COMMON_CUE.search(q) or COMPARISON_CUE.search(q)):
        spans = entity_spans(q)
        # neighbours, and a span joined to itself (two works that share a name)
        for a, b in [*zip(spans, spans[1:], strict=False), *zip(spans, spans, strict=True)]:
            if re.search(rf"{re.escape(a)}\"?\s+(?:and|or)\s+\"?{re.escape(b)}", q):
                return [a, b]
    if not m:
        return []
    items = [re.sub(r"^(?:the|a|an)\s+", "", g.strip(" \"'"), flags=re.I) for g in m.groups()]
    return [i for i in items if i and len(i.split()) <= 8]


def bridge_entities(question: str, hop1: list[dict], limit: int = MAX_BRIDGES) -> list[str]:
    """Names in the hop-1 evidence that the question does not mention, the likeliest bridge first.

    Candidates are the names in the best-matching sentences of the top hop-1 documents (the ones the
    question names by title first). A name scores for its sentence's match with the question and for
    being the title of another retrieved document (the corpus knows it as an entity). Dates, numbers
    and nationality adjectives ("1949 American") are descriptions, not entities, and are skipped."""
    return [name for name, _ in bridge_votes(question, hop1)[:limit]]


def bridge_votes(question: str, hop1: list[dict]) -> list[tuple[str, bool]]:
    """(candidate, is the title of a retrieved document) pairs, best first."""
    asked = content_terms(question)
    q_lower = question.lower()
    votes: dict[str, float] = {}
    # the hop-1 document is usually the one the question names: prefer hits whose title it mentions
    named = [h for h in hop1 if _title_named(h, asked) or names_title(question, hit_title(h))]
    ordered = named + [h for h in hop1 if h not in named]
    titles = {base_title(hit_title(h)).lower() for h in hop1 if hit_title(h)}
    for rank, hit in enumerate(ordered[:HOP1_DOCS]):
        own = content_terms(base_title(hit_title(hit)))
        sentences = split_sentences(hit.get("text", "")) or [hit.get("text", "")]
        scored = sorted(sentences, key=lambda s: -overlap(asked, s))
        for pos, sentence in enumerate(scored[:3]):
            for span in entity_spans(sentence):
                terms = content_terms(span)
                if not terms or terms <= asked or span.lower() in q_lower or is_description(span):
                    continue
                if own and terms <= own:
                    continue  # names the hop-1 document itself, not a bridge to another one
                vote = (3 - pos) * (2 - rank * 0.5) + 0.2 * len(terms)
                vote += TITLE_WEIGHT * (span.lower() in titles)
                votes[span] = votes.get(span, 0.0) + vote
    best = sorted(votes, key=lambda s: -votes[s])
    return [(span, span.lower() in titles) for span in best]


def is_description(span: str) -> bool:
    """True for spans that describe rather than name: dates, numbers, nationality adjectives, and quoted
    lower-case words (a name has a capital letter)."""
    if not re.search(r"[A-Z]", span):
        return True
    return all(_DESCRIPTIVE.fullmatch(w.strip(".,'\"")) for w in span.split())


def _title_named(hit: dict, asked: set[str]) -> bool:
    title_terms = content_terms(hit_title(hit))
    return bool(title_terms) and title_terms <= asked
