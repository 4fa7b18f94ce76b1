"""Plain data types shared by ingestion, the index, the graph and evals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SourceDocument:
    """One source document before chunking. `doc_id` is stable across re-ingests of the same source.

    Not LangChain's `Document` (page_content, metadata, id): ingest converts those (see lc_documents).
    """

    doc_id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # "markdown" | "text" | "html" | "pdf" | "jsonl": tells the chunker which structure to look for
    format: str = "text"


# the internal modules' old name for SourceDocument; kept out of the public API, where it would shadow
# langchain_core.documents.Document
Document = SourceDocument


@dataclass
class Chunk:
    """A retrievable unit. Small child chunks are indexed; `parent_id` names the section sent to the LLM."""

    chunk_id: str
    doc_id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None


@dataclass
class Parent:
    """A parent section: the larger context a child chunk expands to."""

    parent_id: str
    doc_id: str
    text: str
    section: str = ""


@dataclass
class AccessScope:
    """Who is asking: retrieval only returns chunks whose ACL admits these groups and clearance.

    A chunk with no `access_groups` is public; `security_level` defaults to 0. `clearance=None` with
    `groups=None` means an unrestricted (trusted, local) caller.
    """

    groups: list[str] | None = None
    clearance: int | None = None

    @property
    def unrestricted(self) -> bool:
        return self.groups is None and self.clearance is None

    @classmethod
    def public(cls) -> AccessScope:
        """Public documents only: no groups, clearance 0 (the default for callers that name no scope)."""
        return cls(groups=[], clearance=0)


@dataclass
class SearchHit:
    """One retrieval result, with everything a trace or a debugger needs to explain its position."""

    chunk_id: str
    doc_id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    # rank (1-based) in each source list, None when the source did not return it: {"dense": 3, "bm25": None}
    ranks: dict[str, int | None] = field(default_factory=dict)
    # raw score in each source list: {"dense": 0.71, "bm25": 12.3}
    source_scores: dict[str, float] = field(default_factory=dict)
    parent_id: str | None = None

    @property
    def title(self) -> str:
        return str(self.metadata.get("title", ""))

    @property
    def section(self) -> str:
        return str(self.metadata.get("section", ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the CLI's --json and the API."""
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "title": self.title,
            "section": self.section,
            "text": self.text,
            "score": self.score,
            "ranks": dict(self.ranks),
            "source_scores": dict(self.source_scores),
            "parent_id": self.parent_id,
            "metadata": dict(self.metadata),
        }
