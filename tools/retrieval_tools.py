"""LangChain bindings of the index: agent-callable tools and a `BaseRetriever`.

`make_retrieval_tools(index, access)` binds the caller's AccessScope in a closure, so the ACL is never a tool
argument an LLM could set; tool errors from bad input come back to the model as text (ToolException) so it
can correct its call.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, ToolException, tool
from pydantic import BaseModel, ConfigDict, Field
from ragroute.tools.errors import FilterError, InputError
from ragroute.tools.filters import parse_filter
from ragroute.tools.types import AccessScope, SearchHit

MAX_TOOL_K = 20
SNIPPET_CHARS = 800


class SearchDocumentsArgs(BaseModel):
    """Arguments of the `search_documents` tool."""

    query: str = Field(
        description="What to look for, in natural language or exact terms (error codes, names)."
    )
    k: int = Field(default=5, ge=1, le=MAX_TOOL_K, description="How many passages to return.")
    filters: dict[str, Any] | None = Field(
        default=None,
        description=(
            'Optional metadata filter, Mongo style: {"doc_type": "technical"}, '
            '{"version": {"$gte": "2.10.0"}}, {"last_updated": {"$gt": "2024-01-01"}}, '
            '{"$or": [{"category": "ops"}, {"language": "de"}]}. '
            "Operators: $eq $ne $in $nin $gt $gte $lt $lte $and $or."
        ),
    )


class ParentArgs(BaseModel):
    """Arguments of the `get_parent_section` tool."""

    parent_id: str = Field(description="parent_id of a passage returned by search_documents.")


class ChunkArgs(BaseModel):
    """Arguments of the `get_passage` tool."""

    chunk_id: str = Field(description="chunk_id of a passage returned by search_documents.")


def hit_to_tool_dict(hit: SearchHit, snippet_chars: int = SNIPPET_CHARS) -> dict[str, Any]:
    """The compact JSON an LLM sees for one hit."""
    text = hit.text if len(hit.text) <= snippet_chars else hit.text[:snippet_chars].rstrip() + " ..."
    return {
        "chunk_id": hit.chunk_id,
        "doc_id": hit.doc_id,
        "title": hit.title,
        "section": hit.section,
        "source": hit.metadata.get("source", ""),
        "score": round(hit.score, 6),
        "parent_id": hit.parent_id,
        "text": text,
    }


def make_retrieval_tools(index: Any, access: AccessScope | None = None) -> list[BaseTool]:
    """Tools bound to `index` and the caller's `access`: search_documents, get_passage, get_parent_section."""

    def _search_args(query: str, k: int, filters: dict[str, Any] | None) -> None:
        if not query or not query.strip():
            raise ToolException("query must not be empty")
        try:
            parse_filter(filters)
        except FilterError as exc:
            raise ToolException(f"bad filters: {exc}") from exc

    def _render(hits: list[SearchHit]) -> str:
        return json.dumps([hit_to_tool_dict(h) for h in hits], ensure_ascii=False)

    @tool("search_documents", args_schema=SearchDocumentsArgs)
    def search_documents(query: str, k: int = 5, filters: dict[str, Any] | None = None) -> str:
        """Search the knowledge base (hybrid keyword + semantic). Returns a JSON list of passages with
        chunk_id, doc_id, title, section, source, score, parent_id and text."""
        _search_args(query, k, filters)
        try:
            return _render(index.search(query, k=k, filters=filters, access=access))
        except (InputError, FilterError) as exc:
            raise ToolException(str(exc)) from exc

    async def _asearch(query: str, k: int = 5, filters: dict[str, Any] | None = None) -> str:
        _search_args(query, k, filters)
        try:
            return _render(await index.asearch(query, k=k, filters=filters, access=access))
        except (InputError, FilterError) as exc:
            raise ToolException(str(exc)) from exc

    search_documents.coroutine = _asearch

    @tool("get_passage", args_schema=ChunkArgs)
    def get_passage(chunk_id: str) -> str:
        """Fetch one passage by chunk_id, with its metadata, as JSON."""
        chunk = index.get_chunk(chunk_id, access=access)
        if chunk is None:  # a hidden passage looks exactly like a missing one
            raise ToolException(f"no passage with chunk_id {chunk_id!r}")
        return json.dumps(
            {
                "chunk_id": chunk.chunk_id,
                "doc_id": chunk.doc_id,
                "parent_id": chunk.parent_id,
                "text": chunk.text,
                "metadata": chunk.metadata,
            },
            ensure_ascii=False,
            default=str,
        )

    @tool("get_parent_section", args_schema=ParentArgs)
    def get_parent_section(parent_id: str) -> str:
        """Fetch the full section a passage belongs to (more context than the passage itself)."""
        parent = index.get_parent(parent_id, access=access)
        if parent is None:
            raise ToolException(f"no section with parent_id {parent_id!r}")
        return json.dumps(
            {
                "parent_id": parent.parent_id,
                "doc_id": parent.doc_id,
                "section": parent.section,
                "text": parent.text,
            },
            ensure_ascii=False,
        )

    tools: list[BaseTool] = [search_documents, get_passage, get_parent_section]
    for t in tools:
        t.handle_tool_error = True
    return tools


def hit_to_document(hit: SearchHit) -> Document:
    """A LangChain Document carrying the hit's metadata plus chunk_id, fused score and per-path ranks."""
    meta = dict(hit.metadata)
    meta.update(
        chunk_id=hit.chunk_id,
        doc_id=hit.doc_id,
        parent_id=hit.parent_id,
        score=hit.score,
        ranks=dict(hit.ranks),
        source_scores=dict(hit.source_scores),
    )
    return Document(page_content=hit.text, metadata=meta, id=hit.chunk_id)


class HybridRetriever(BaseRetriever):
    """LangChain retriever over a HybridIndex with k, filters, access scope and weights.

    No `access` means public documents only; `all_access=True` reads every document. `k` and `filters`
    can be overridden per call: `retriever.invoke(query, k=3, filters={...})` (the scope cannot).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    k: int = Field(default=5, ge=1, le=1000)
    filters: dict[str, Any] | None = None
    access: AccessScope | None = None
    all_access: bool = False
    weights: dict[str, float] | None = None

    def _scope(self) -> AccessScope | None:
        if self.all_access and self.access is not None:
            raise InputError("give HybridRetriever either access or all_access=True, not both")
        if self.all_access:
            return None
        return self.access if self.access is not None else AccessScope.public()

    def _args(self, k: int | None, filters: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "k": self.k if k is None else k,
            "filters": self.filters if filters is None else filters,
            "access": self._scope(),
            "weights": self.weights,
        }

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[Document]:
        hits = self.index.search(query, **self._args(k, filters))
        return [hit_to_document(h) for h in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[Document]:
        hits = await self.index.asearch(query, **self._args(k, filters))
        return [hit_to_document(h) for h in hits]
