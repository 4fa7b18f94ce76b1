"""Chunker: section paths, parent/child containment, budgets, sentence integrity, ids, topic shifts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ragroute.tools.chunking import chunk_document, topic_boundaries
from ragroute.tools.errors import ConfigError
from ragroute.tools.tokens import count_tokens
from ragroute.tools.types import Chunk, Document, Parent

GUIDE = """# Guide

Welcome to the guide for the scheduler.

## Auth

Authentication uses tokens issued by the server.

### Tokens

Tokens expire after one hour. Refresh them with the refresh endpoint.

```python
# this is a comment, not a heading
token = refresh(token)

print(token)
```

| field | meaning |
|---|---|
| exp | expiry time |

## Billing

Billing happens monthly.
"""


def _md(text: str, doc_id: str = "guide.md", **meta: object) -> Document:
    return Document(
        doc_id=doc_id,
        text=text,
        title="Guide",
        source=f"docs/{doc_id}",
        metadata=dict(meta),
        format="markdown",
    )


def _check_invariants(chunks: list[Chunk], parents: list[Parent], budget: int) -> None:
    by_id = {p.parent_id: p for p in parents}
    assert len(by_id) == len(parents), "parent ids must be unique"
    assert len({c.chunk_id for c in chunks}) == len(chunks), "chunk ids must be unique"
    for i, c in enumerate(chunks):
        assert c.parent_id in by_id
        assert c.text in by_id[c.parent_id].text, "a child's text must be inside its parent"
        assert c.text == c.text.strip() and c.text
        assert count_tokens(c.text) <= budget
        assert c.metadata["chunk_index"] == i and c.metadata["parent_id"] == c.parent_id
        assert "#" not in c.chunk_id


def test_markdown_sections_follow_the_heading_hierarchy() -> None:
    chunks, parents = chunk_document(_md(GUIDE, doc_type="technical"))
    _check_invariants(chunks, parents, 200)
    sections = [c.metadata["section"] for c in chunks]
    assert sections == ["Guide", "Guide > Auth", "Guide > Auth > Tokens", "Guide > Billing"]
    assert chunks[2].metadata["section_path"] == ["Guide", "Auth", "Tokens"]
    # the "#" inside the code fence did not open a section, and code + table stayed in one piece
    tokens_chunk = chunks[2].text
    assert (
        "# this is a comment" in tokens_chunk
        and "token = refresh(token)\n\nprint(token)\n```" in tokens_chunk
    )
    assert "| exp | expiry time |" in tokens_chunk
    # small sections under one top heading share one parent
    assert len(parents) == 1 and parents[0].section == "Guide"


def test_chunk_metadata_carries_doc_metadata_and_structure() -> None:
    chunks, _ = chunk_document(_md(GUIDE, doc_type="technical", access_groups=["eng"]))
    meta = chunks[1].metadata
    assert meta["doc_type"] == "technical" and meta["access_groups"] == ["eng"]
    assert meta["doc_id"] == "guide.md" and meta["title"] == "Guide"
    assert meta["source"] == "docs/guide.md" and meta["chunk_index"] == 1
    assert chunks[1].doc_id == "guide.md"


def test_setext_headings_and_preamble() -> None:
    text = "Preamble line.\n\nTop\n===\n\nUnder top.\n\nSub\n---\n\nUnder sub."
    chunks, _ = chunk_document(_md(text))
    assert [c.metadata["section"] for c in chunks] == ["", "Top", "Top > Sub"]
    assert "section_path" not in chunks[0].metadata


def _sentences(topic: str, n: int) -> str:
    return " ".join(
        f"Sentence {i} talks about {topic} and more {topic} details number {i}." for i in range(n)
    )


def test_long_section_splits_into_budgeted_children_at_sentence_ends() -> None:
    body = "\n\n".join(_sentences("scheduler retries", 12) for _ in range(4))
    chunks, parents = chunk_document(_md(f"# Big\n\n{body}"), child_tokens=120, parent_tokens=400)
    _check_invariants(chunks, parents, 120)
    assert len(chunks) > 4
    for c in chunks:
        assert c.text.endswith("."), f"chunk ends mid-sentence: {c.text[-40:]!r}"
    # the section is larger than the parent budget, so it is split into several parents, each within budget
    assert len(parents) > 1
    assert all(count_tokens(p.text) <= 400 for p in parents)
    assert all(p.section == "Big" for p in parents)


def test_a_single_giant_sentence_is_the_only_thing_split_mid_sentence() -> None:
    giant = " ".join(f"word{i}" for i in range(600)) + "."
    blob = "x" * 3000
    chunks, parents = chunk_document(_md(f"# H\n\nShort intro.\n\n{giant}\n\n{blob}"), child_tokens=100)
    _check_invariants(chunks, parents, 100)
    joined = " ".join(c.text for c in chunks)
    assert "word0" in joined and "word599." in joined
    assert sum(c.text.count("x") for c in chunks) == 3000


def test_paragraphs_are_merged_up_to_the_budget() -> None:
    paras = [f"Paragraph {i} about the scheduler queue and its worker pool." for i in range(12)]
    chunks, parents = chunk_document(_md("# Q\n\n" + "\n\n".join(paras)), child_tokens=60)
    _check_invariants(chunks, parents, 60)
    assert 1 < len(chunks) < len(paras)
    # every paragraph appears exactly once, and never split
    for p in paras:
        assert sum(c.text.count(p) for c in chunks) == 1


CATS = [
    "Cats sleep for most of the day and hunt mice at night when the house is quiet.",
    "A cat grooms its fur with a rough tongue, and cats purr when the owner strokes them.",
    "Kittens learn hunting from their mother cat by watching how she stalks mice and birds.",
]
TAX = [
    "Corporate income tax returns must be filed before the fiscal deadline each April.",
    "Late tax filings incur penalties, and interest accrues on any unpaid tax balance.",
    "Deductions reduce taxable income, so keep receipts for every deductible business expense.",
]


def test_topic_shift_starts_a_new_chunk_even_within_budget() -> None:
    text = "# Notes\n\n" + "\n\n".join(CATS + TAX)
    chunks, parents = chunk_document(_md(text), child_tokens=400, min_topic_tokens=20)
    _check_invariants(chunks, parents, 400)
    assert len(chunks) == 2
    assert chunks[0].text.endswith(CATS[-1]) and chunks[1].text == "\n\n".join(TAX)


def test_no_topic_shift_keeps_one_chunk() -> None:
    text = "# Notes\n\n" + "\n\n".join(CATS + CATS[::-1])
    chunks, _ = chunk_document(_md(text), child_tokens=400, min_topic_tokens=20)
    assert len(chunks) == 1


def test_topic_boundaries_finds_the_vocabulary_change() -> None:
    assert topic_boundaries(CATS + TAX) == {3}
    assert topic_boundaries(CATS) == set()
    assert topic_boundaries(["only one"]) == set()


def test_ids_are_deterministic_and_change_with_content_or_metadata() -> None:
    a1, p1 = chunk_document(_md(GUIDE))
    a2, p2 = chunk_document(_md(GUIDE))
    assert [c.chunk_id for c in a1] == [c.chunk_id for c in a2]
    assert [p.parent_id for p in p1] == [p.parent_id for p in p2]
    edited, _ = chunk_document(_md(GUIDE.replace("monthly", "weekly")))
    assert edited[-1].chunk_id != a1[-1].chunk_id
    relabeled, _ = chunk_document(_md(GUIDE, doc_type="policy"))
    assert not {c.chunk_id for c in relabeled} & {c.chunk_id for c in a1}
    assert all(c.chunk_id.startswith("guide.md::") for c in a1)


def test_hash_sign_in_doc_id_is_escaped_in_chunk_ids() -> None:
    chunks, parents = chunk_document(_md("# C#\n\nAbout C# code.", doc_id="lang/c#.md"))
    assert chunks[0].doc_id == "lang/c#.md"
    assert chunks[0].chunk_id.startswith("lang/c%23.md::") and "#" not in parents[0].parent_id


def test_plain_text_uses_paragraphs() -> None:
    paras = [_sentences("queues", 2), _sentences("workers", 2), _sentences("retries", 2)]
    doc = Document("notes.txt", f"{paras[0]}\n\n\n{paras[1]}\n  \n{paras[2]}", title="notes", format="text")
    budget = count_tokens(paras[0]) + 5  # room for one paragraph, not two
    chunks, parents = chunk_document(doc, child_tokens=budget)
    _check_invariants(chunks, parents, budget)
    assert [c.text for c in chunks] == paras
    assert all(c.metadata["section"] == "" for c in chunks)


def test_pdf_pages_become_sections() -> None:
    doc = Document("r.pdf", "Intro page text.\fSecond page text.", title="Report", format="pdf")
    chunks, _ = chunk_document(doc)
    assert [(c.metadata["section"], c.text) for c in chunks] == [
        ("Page 1", "Intro page text."),
        ("Page 2", "Second page text."),
    ]


def test_jsonl_abstract_is_one_chunk_with_title_as_section() -> None:
    doc = Document("4983", "A short abstract. It has two sentences.", title="Brain imaging", format="jsonl")
    chunks, parents = chunk_document(doc)
    assert len(chunks) == 1 and len(parents) == 1
    assert chunks[0].metadata["section"] == "Brain imaging"
    assert chunks[0].text == "A short abstract. It has two sentences." == parents[0].text


@pytest.mark.parametrize(("child", "parent"), [(4, 800), (200, 100)])
def test_bad_budgets_raise_config_error(child: int, parent: int) -> None:
    with pytest.raises(ConfigError, match=str(child)):
        chunk_document(_md(GUIDE), child_tokens=child, parent_tokens=parent)


def test_real_markdown_sample_invariants() -> None:
    sections = []
    for i in range(6):
        sections.append(f"## Part {i}\n\n" + "\n\n".join(_sentences(f"topic{i}", 5 + i) for _ in range(3)))
    text = "# Manual\n\n" + "\n\n".join(sections)
    chunks, parents = chunk_document(_md(text), child_tokens=150, parent_tokens=500)
    _check_invariants(chunks, parents, 150)
    assert {c.metadata["section"] for c in chunks} == {f"Manual > Part {i}" for i in range(6)}
    assert all(count_tokens(p.text) <= 500 for p in parents)
    # nothing is lost: every sentence of the source is in some chunk
    for sentence in re.findall(
        r"Sentence \d+ talks about topic\d and more topic\d details number \d+\.", text
    ):
        assert any(sentence in c.text for c in chunks)


def test_heading_only_section_moves_into_the_next_section() -> None:
    text = (
        "# Top\n\nIntro.\n\n## Concepts\n\n### Workflows\n\nA workflow is a graph.\n\n### Schedules\n\nCron."
    )
    chunks, parents = chunk_document(_md(text))
    assert [c.metadata["section"] for c in chunks] == [
        "Top",
        "Top > Concepts > Workflows",
        "Top > Concepts > Schedules",
    ]
    assert chunks[1].text == "## Concepts\n\n### Workflows\n\nA workflow is a graph."
    assert "## Concepts" in parents[0].text


def test_budget_split_does_not_leave_a_tiny_tail() -> None:
    para = "The scheduler queue holds pending task runs until a worker slot frees up for them again."
    paras = [f"{para} Item {i}." for i in range(5)]
    size = count_tokens(paras[0])
    budget = 4 * size + 8  # four paragraphs fit, the fifth would be alone
    chunks, parents = chunk_document(_md("\n\n".join(paras)), child_tokens=budget, min_topic_tokens=2 * size)
    _check_invariants(chunks, parents, budget)
    assert len(chunks) == 2
    assert [c.text.count("Item") for c in chunks] == [3, 2]


_WORDS = ["alpha", "beta", "gamma", "delta", "queue", "worker", "token", "cache", "x" * 40, "naïve", "日本語"]


@st.composite
def _markdown_docs(draw: st.DrawFn) -> str:
    sentence = st.lists(st.sampled_from(_WORDS), min_size=1, max_size=30).map(lambda ws: " ".join(ws) + ".")
    paragraph = st.lists(sentence, min_size=1, max_size=8).map(" ".join)
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        level = draw(st.integers(1, 4))
        parts.append("#" * level + " " + draw(st.sampled_from(_WORDS)).title())
        parts.extend(draw(st.lists(paragraph, min_size=1, max_size=4)))
    return "\n\n".join(parts)


@settings(max_examples=40, deadline=None)
@given(text=_markdown_docs(), child=st.integers(12, 120), extra=st.integers(0, 300))
def test_property_chunks_cover_the_document_within_budget(text: str, child: int, extra: int) -> None:
    chunks, parents = chunk_document(_md(text), child_tokens=child, parent_tokens=child + extra)
    _check_invariants(chunks, parents, child)
    assert all(count_tokens(p.text) <= child + extra for p in parents)
    # nothing is lost or duplicated: the non-space characters of the chunks are exactly the document's
    assert "".join("".join(c.text.split()) for c in chunks) == "".join(text.split())
