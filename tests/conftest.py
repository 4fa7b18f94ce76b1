"""Shared fixtures: the real offline MiniLM embedder (loaded once) and a tiny indexed corpus.

`make_index(**config_kw)` builds a HybridIndex in a fresh tmp dir from TINY_CORPUS (or `corpus=`); keep the
corpus stable, other helpers' tests rely on its ids and metadata.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ragroute.tools.types import Chunk, Parent

# (doc_id, title, text, metadata). Each document becomes one parent and one chunk per paragraph ("\n\n").
TINY_CORPUS: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "auth",
        "Authentication guide",
        "Access tokens expire after 15 minutes. Refresh tokens last 30 days.\n\n"
        "To rotate the signing key, run `ragroute keys rotate` and restart the API server.",
        {
            "doc_type": "technical",
            "version": "2.10.0",
            "last_updated": "2025-03-01",
            "category": "security",
            "language": "en",
            "access_groups": [],
            "security_level": 0,
        },
    ),
    (
        "auth-old",
        "Authentication guide (legacy)",
        "In version 2.9 access tokens expired after 60 minutes and could not be refreshed.",
        {
            "doc_type": "technical",
            "version": "2.9.1",
            "last_updated": "2023-06-15",
            "category": "security",
            "language": "en",
            "access_groups": [],
            "security_level": 0,
        },
    ),
    (
        "rrf",
        "Why hybrid search works",
        "Keyword search finds exact identifiers such as error codes; semantic search finds paraphrases.\n\n"
        "Reciprocal rank fusion combines both rankings without calibrating their scores.",
        {
            "doc_type": "conceptual",
            "version": "2.10.0",
            "last_updated": "2025-01-10",
            "category": "search",
            "language": "en",
            "access_groups": [],
            "security_level": 0,
        },
    ),
    (
        "salary",
        "Compensation bands",
        "Engineering salary bands are reviewed every April by the compensation committee.",
        {
            "doc_type": "policy",
            "version": "1.0",
            "last_updated": "2024-04-01",
            "category": "hr",
            "language": "en",
            "access_groups": ["hr"],
            "security_level": 2,
        },
    ),
    (
        "incident",
        "Incident runbook",
        "Error E1042 means the vector store is unreachable; check that the Chroma server is running.",
        {
            "doc_type": "technical",
            "version": "2.10.1",
            "last_updated": "2025-05-20",
            "category": "ops",
            "language": "en",
            "access_groups": ["eng", "ops"],
            "security_level": 1,
        },
    ),
    (
        "cats",
        "Office pets",
        "The office cat sleeps on the warm server rack; please do not feed her tuna.",
        {
            "doc_type": "conceptual",
            "version": "1.2",
            "last_updated": "2022-11-30",
            "category": "misc",
            "language": "en",
            "access_groups": [],
            "security_level": 0,
        },
    ),
    (
        "deploy-de",
        "Bereitstellung",
        "Die Bereitstellung erfolgt über Docker Compose; der Index liegt unter /var/lib/ragroute.",
        {
            "doc_type": "tutorial",
            "version": "2.10.0",
            "last_updated": "2025-02-14",
            "category": "ops",
            "language": "de",
            "access_groups": [],
            "security_level": 0,
        },
    ),
    (
        "secret",
        "Board minutes",
        "The board approved the acquisition of a vector database startup.",
        {
            "doc_type": "policy",
            "version": "1.0",
            "last_updated": "2025-06-01",
            "category": "board",
            "language": "en",
            "access_groups": ["board"],
            "security_level": 3,
        },
    ),
]


def corpus_batch(
    corpus: list[tuple[str, str, str, dict[str, Any]]] | None = None,
) -> list[tuple[str, list[Chunk], list[Parent], str, dict[str, Any]]]:
    """Turn (doc_id, title, text, meta) rows into `HybridIndex.upsert_documents` items."""
    out = []
    for doc_id, title, text, meta in corpus if corpus is not None else TINY_CORPUS:
        parent = Parent(parent_id=f"{doc_id}::p0", doc_id=doc_id, text=text, section=title)
        chunks = [
            Chunk(
                chunk_id=f"{doc_id}::c{i}",
                doc_id=doc_id,
                text=para,
                metadata={"title": title, "section": title, "source": f"{doc_id}.md", "chunk_index": i},
                parent_id=parent.parent_id,
            )
            for i, para in enumerate(p for p in text.split("\n\n") if p.strip())
        ]
        chash = hashlib.sha256(f"{title}\n{text}\n{sorted(meta.items())}".encode()).hexdigest()
        out.append((doc_id, chunks, [parent], chash, dict(meta)))
    return out


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The real offline MiniLM embedder, loaded once per test session."""
    from ragroute.tools.embeddings import get_embedder

    return get_embedder("minilm")


@pytest.fixture(scope="session")
def tiny_corpus() -> list[tuple[str, str, str, dict[str, Any]]]:
    """The inline corpus `make_index` indexes by default."""
    return TINY_CORPUS


@pytest.fixture
def make_index(tmp_path: Any, embedder: Any) -> Iterator[Callable[..., Any]]:
    """Factory: `make_index(corpus=None, *, empty=False, **config_kw) -> HybridIndex` in a fresh tmp dir."""
    from ragroute.tools.index import HybridIndex, IndexConfig

    opened: list[Any] = []
    counter = itertools.count()

    def make(
        corpus: list[tuple[str, str, str, dict[str, Any]]] | None = None,
        *,
        empty: bool = False,
        **config_kw: Any,
    ) -> Any:
        config_kw.setdefault("path", str(tmp_path / f"index-{next(counter)}"))
        index = HybridIndex(IndexConfig(**config_kw), embedder=embedder)
        opened.append(index)
        if not empty:
            index.upsert_documents(corpus_batch(corpus))
        return index

    yield make
    for index in opened:
        index.close()
