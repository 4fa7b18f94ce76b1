"""decompose: split a multi-hop question into sub-questions retrieved in parallel (Send).

Offline rules:
- comparison ("..., A or B?", "both A and B"): one sub-question per compared item;
- bridge ("the hotel in which X's album was recorded"): hop 1 is the question itself (classify's probe
  search, already ACL-filtered); the bridging entity is a name in the best-matching hop-1 sentence that the
  question does not mention; hop 2 asks about that entity with the question's unmatched terms.
With an LLM configured, the model writes the sub-questions (JSON list), and the rules are the fallback.

Title links: in a corpus of titled documents (an encyclopedia, a wiki, product pages) the document a
question names by its title is evidence for that question ("anchor"), and a document whose title the
anchor's text names (or which names the anchor) is the natural next hop. `title_evidence` finds both among
the retrieved hits; rerank puts them first on the multi-hop route.
"""

from __future__ import annotations

import re

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.nodes.classify import comparison_entities, entity_spans
from ragroute.prompts.decompose import DECOMPOSE_PROMPT
from ragroute.runtime.steps import llm_strings, note, timed
from ragroute.state import RAGState, RetrieveTask
from ragroute.tools.extractive import content_terms, overlap, split_sentences, title_and_section

HOP1_DOCS = 2
MAX_BRIDGES = 2
EVIDENCE_DEPTH = 10  # how deep into each hop's list title evidence is looked for
TITLE_WEIGHT = 3.0  # a name that is also a retrieved document's title: as strong as the best sentence
_DISAMBIGUATOR = re.compile(r"\s*\([^()]*\)\s*$")
_DESCRIPTIVE = re.compile(
    r"\d[\w\-.]*|(?:Jan|Febr)uary|March|April|May|June|July|August|(?:Sept|Nov|Dec)ember|October"
    r"|[A-Z][a-z]+(?:ian|ean|ese|ish|can)|German|French|Dutch|Greek|Swiss|Thai|Welsh",
)


def base_title(title: str) -> str:
    """A title without its trailing disambiguator: 'Kiss and Tell (1945 film)' -> 'Kiss and Tell'."""
    return _DISAMBIGUATOR.sub("", title or "").strip()


def names_title(text: str, title: str) -> bool:
    """Whether text names the document title: its base form, whole words, case-sensitive.

    Only titles that look like names count (3+ characters with a capital letter or a digit), so a page
    titled 'history' is not 'named' by every text that uses the word."""
    name = base_title(title)
    if len(name) < 3 or not re.search(r"[A-Z0-9]", name):
        return False
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text or "") is not None


def hit_title(hit: dict) -> str:
    """The hit's document title (top-level or in metadata); '' when it has none."""
    return title_and_section(hit)[0]


def title_evidence(question: str, lists: list[list[dict]], depth: int = EVIDENCE_DEPTH) -> list[dict]:
    """Documents the question names by title (anchors), then documents title-linked to an anchor.

    Looks at the top `depth` hits of every list and returns each document's best-ranked chunk, best
    rank first (the evidence is about documents: a long document named by the question does not fill
    the context with all its chunks). A document is linked when an anchor's text names its title or its
    text names the anchor's title. Without anchors, each list's top hit stands in for them (and comes
    first); [] when nothing is named or linked."""
    best: dict[str, tuple[int, dict]] = {}  # document -> its best-ranked chunk
    texts: dict[str, list[str]] = {}  # document -> the texts of all its chunks seen
    for hits in lists:
        for rank, hit in enumerate(hits[:depth]):
            doc = str(hit.get("doc_id") or hit["chunk_id"])
            if doc not in best or rank < best[doc][0]:
                best[doc] = (rank, hit)
            texts.setdefault(doc, []).append(hit.get("text", ""))
    pool = sorted(best, key=lambda d: best[d][0])
    anchors = [d for d in pool if names_title(question, hit_title(best[d][1]))]
    tops = [str(hits[0].get("doc_id") or hits[0]["chunk_id"]) for hits in lists if hits]
    sources = anchors or list(dict.fromkeys(tops))

    def linked_to(doc: str, source: str) -> bool:
        title, source_title = hit_title(best[doc][1]), hit_title(best[source][1])
        if doc == source or title == source_title:
            return False
        return any(names_title(t, title) for t in texts[source]) or any(
            names_title(t, source_title) for t in texts[doc]
        )

    linked = [d for d in pool if d not in sources and any(linked_to(d, s) for s in sources)]
    if not anchors and not linked:
        return []
    return [best[d][1] for d in [*sources, *linked]]


def _ordered_terms(text: str, exclude: set[str]) -> list[str]:
    seen: list[str] = []
    for word in text.replace("?", " ").split():
        w = word.strip(".,'\"()").lower()
        if w in content_terms(word) and w not in exclude and w not in seen:
            seen.append(w)
    return seen


def comparison_subquestions(question: str, items: list[str]) -> list[str]:
    """One query per compared item: the item plus the question's other content words."""
    item_terms = set().union(*(content_terms(i) for i in items))
    rest = " ".join(_ordered_terms(question, item_terms))
    return [f"{item} {rest}".strip() for item in items]


def bridge_entities(question: str, hop1: list[dict], limit: int = MAX_BRIDGES) -> list[str]:
    """Names in the hop-1 evidence that the question does not mention, the likeliest bridge first.

    Candidates are the names in the best-matching sentences of the top hop-1 documents (the ones the
    question names by title first). A name scores for its sentence's match with the question and for
    being the title of another retrieved document (the corpus knows it as an entity). Dates, numbers
    and nationality adjectives ("1949 American") are descriptions, not entities, and are skipped."""
    return [name for name, _ in _bridge_votes(question, hop1)[:limit]]


def _bridge_votes(question: str, hop1: list[dict]) -> list[tuple[str, bool]]:
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


def offline_subquestions(question: str, probe: list[dict], limit: int) -> tuple[list[str], str]:
    """Sub-questions by rule and the rule's name ("comparison" | "bridge")."""
    items = comparison_entities(question)
    if len(items) >= 2:
        subs = list(dict.fromkeys(comparison_subquestions(question, items)))  # same-named items: one search
        return subs[:limit], "comparison"
    votes = _bridge_votes(question, probe)
    # a name hop 1 already retrieved as a document needs no second search (rerank links it by title);
    # hop 2 is spent on the names hop 1 did not find
    fresh = [name for name, retrieved in votes if not retrieved]
    bridges = (fresh or [name for name, _ in votes])[:MAX_BRIDGES]
    top_text = " ".join(h.get("text", "") for h in probe[:1]).lower()
    residual = [t for t in _ordered_terms(question, set()) if t not in top_text]
    return [f"{b} {' '.join(residual)}".strip() for b in bridges][:limit], "bridge"


@timed("decompose")
async def decompose(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Plan sub-question retrievals (hop 1 reuses the classify probe) for parallel Send branches."""
    ctx = context_of(runtime)
    question = state["question"]
    probe = state.get("probe") or []
    prompt = DECOMPOSE_PROMPT.format(question=question, n=ctx.max_subquestions)
    subs, update = await llm_strings(
        ctx, "decompose", prompt, ctx.max_subquestions, "used rule-based sub-questions"
    )
    method = "llm"
    if not subs:
        subs, method = offline_subquestions(question, probe, ctx.max_subquestions)
    filters = state.get("filters")
    purpose = "hop2" if method == "bridge" else "subquestion"
    queries: list[RetrieveTask] = [{"query": s, "purpose": purpose, "filters": filters} for s in subs]
    if method != "bridge":
        queries.insert(0, {"query": question, "purpose": "original", "filters": filters})
    return {
        **update,
        "queries": queries,
        "subquestions": subs,
        "retrievals": [{"query": question, "purpose": "hop1", "hits": probe}] if method == "bridge" else [],
        "candidates": probe if method == "bridge" else [],
        "trace": [note("decompose", method=method, subquestions=subs)],
    }
