"""Document titles as evidence: which retrieved documents a question names, and which are linked to them.

In a corpus of titled documents (an encyclopedia, a wiki, product pages) the document a question names by
its title is evidence for that question ("anchor"), and a document whose title the anchor's text names (or
which names the anchor) is the natural next hop. `title_evidence` finds both among retrieved hits.
"""

from __future__ import annotations

import re

from ragroute.tools.extractive import title_and_section

EVIDENCE_DEPTH = 10  # how deep into each hop's list title evidence is looked for
_DISAMBIGUATOR = re.compile(r"\s*\([^()]*\)\s*$")


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
