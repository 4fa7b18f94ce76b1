"""A LangChain `VectorStore` view of a HybridIndex, with the caller's access bound in.

`open_index(path).as_vectorstore(access=...)` returns one. Each LangChain Document added becomes one
ragroute document (its id the doc id), chunked and indexed by the ingest pipeline; a search returns the
matching chunks as Documents whose `id` is their doc id and whose metadata is the document's own, so a
short document (one chunk) comes back exactly as it went in. Searches are hybrid (dense + BM25, fused).

Access is fixed when the view is made, never a search argument: no scope means public documents only,
`all_access=True` every document. A document the scope cannot read is neither returned, nor replaced,
nor deleted through the view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from ragroute.tools.embeddings import to_langchain
from ragroute.tools.errors import ConfigError, IngestError, InputError
from ragroute.tools.filters import acl_allows
from ragroute.tools.ingest import ingest_documents
from ragroute.tools.lc_documents import from_langchain, langchain_doc_id
from ragroute.tools.metadata import RESERVED_KEYS
from ragroute.tools.types import AccessScope, Chunk, SearchHit

# search keyword arguments a caller may pass (k and query are positional in LangChain's API)
SEARCH_KWARGS = ("filter", "weights", "candidate_k")


def resolve_access(access: AccessScope | None, all_access: bool) -> AccessScope | None:
    """The scope a view searches with: `access`, public-only without one, None (all) with all_access."""
    if all_access and access is not None:
        raise ConfigError("give either access or all_access=True, not both")
    if all_access:
        return None
    return access if access is not None else AccessScope.public()


def _own_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A chunk's metadata without what the chunker added (ids, sections, empty title/source)."""
    return {
        k: v for k, v in meta.items() if k not in RESERVED_KEYS and not (k in ("title", "source") and v == "")
    }


def _to_document(hit: SearchHit | Chunk, text: str | None = None) -> Document:
    return Document(
        page_content=hit.text if text is None else text, metadata=_own_metadata(hit.metadata), id=hit.doc_id
    )


class IndexVectorStore(VectorStore):
    """LangChain VectorStore over a HybridIndex; searches, writes and deletes under one bound access scope."""

    def __init__(self, index: Any, *, access: AccessScope | None = None, all_access: bool = False) -> None:
        """`index`: an open HybridIndex; no `access`: public documents only; `all_access=True`: all."""
        self.index = index
        self.access = resolve_access(access, all_access)

    @property
    def embeddings(self) -> Embeddings:
        """The index's embedder as a LangChain `Embeddings`."""
        return to_langchain(self.index.embedder)

    # ------------------------------------------------------------------ writes
    def _check_writable(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            exists = self.index.document_metadata(doc_id) is not None or any(
                d["doc_id"] == doc_id for d in self.index.deleted_documents()
            )
            if exists and not self.index.can_read_document(doc_id, self.access):
                raise IngestError(doc_id, "cannot be written with this store's access")

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add or replace (same id) documents; their doc ids. `ids=` overrides the documents' own ids."""
        ids = kwargs.pop("ids", None)
        if kwargs:
            raise InputError(f"add_documents got unknown arguments {sorted(kwargs)}; it takes ids")
        if ids is not None and len(ids) != len(documents):
            raise InputError(f"got {len(ids)} ids for {len(documents)} documents")
        doc_ids = [
            str(given) if given is not None else langchain_doc_id(doc)
            for doc, given in zip(documents, ids or [None] * len(documents), strict=True)
        ]
        if len(set(doc_ids)) != len(doc_ids):
            raise InputError("add_documents got the same id twice")
        self._check_writable(doc_ids)
        sources = [from_langchain(doc, doc_id=doc_id) for doc, doc_id in zip(documents, doc_ids, strict=True)]
        # LangChain's add-by-id semantics: a given id replaces what it held, whichever source that came from
        report = ingest_documents(self.index, sources, progress=False, use_sidecar=False, replace_source=True)
        if report.failed:
            where, why = report.failed[0]
            more = f" (and {len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
            raise IngestError(where, why + more)
        return doc_ids

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add texts (with optional metadatas and ids) as documents; their doc ids."""
        texts = list(texts)
        metas = metadatas or [{} for _ in texts]
        given: list[str | None] = list(ids) if ids else [None] * len(texts)
        if len(metas) != len(texts) or len(given) != len(texts):
            raise InputError("texts, metadatas and ids must have the same length")
        docs = [
            Document(page_content=t, metadata=m, id=i) for t, m, i in zip(texts, metas, given, strict=True)
        ]
        return self.add_documents(docs, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by doc id (hard delete); ids that do not exist or this scope cannot read are
        skipped. True when the call went through."""
        if ids is None:
            raise InputError("delete needs ids (deleting every document is not supported here)")
        for doc_id in ids:
            if self.index.can_read_document(str(doc_id), self.access):
                self.index.delete_document(str(doc_id))
        return True

    # ------------------------------------------------------------------ reads
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids that this scope can read, their sections joined (the full text)."""
        metas = {doc_id: self.index.document_metadata(doc_id) for doc_id in dict.fromkeys(ids)}
        readable = [i for i, meta in metas.items() if meta is not None and acl_allows(meta, self.access)]
        if not readable:
            return []
        all_chunks = sorted(self.index.chunk_ids())  # the docstore has no per-document listing
        docs = [self._whole_document(i, [c for c in all_chunks if c.startswith(f"{i}::")]) for i in readable]
        return [d for d in docs if d is not None]

    def _whole_document(self, doc_id: str, chunk_ids: list[str]) -> Document | None:
        chunks = [c for c in map(self.index.get_chunk, chunk_ids) if c is not None and c.doc_id == doc_id]
        if not chunks:
            return None
        chunks.sort(key=lambda c: c.metadata.get("chunk_index", 0))
        parents = [
            self.index.get_parent(pid) for pid in dict.fromkeys(c.parent_id for c in chunks if c.parent_id)
        ]
        sections = [p.text for p in parents if p is not None]
        return _to_document(chunks[0], "\n\n".join(sections) if sections else chunks[0].text)

    def _search_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "access" in kwargs or "all_access" in kwargs:
            raise InputError("access is bound when the store is made: index.as_vectorstore(access=...)")
        unknown = sorted(set(kwargs) - set(SEARCH_KWARGS))
        if unknown:
            raise InputError(f"unknown search arguments {unknown}; expected some of {list(SEARCH_KWARGS)}")
        out = {k: v for k, v in kwargs.items() if k != "filter"}
        out["filters"] = kwargs.get("filter")
        out["access"] = self.access
        return out

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Hybrid search: (chunk as Document, fused score) pairs; kwargs: filter, weights, candidate_k."""
        hits = self.index.search(query, k, **self._search_kwargs(kwargs))
        return [(_to_document(h), h.score) for h in hits]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Hybrid search: the k best chunks as Documents (id: doc id); kwargs as with_score."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """`similarity_search_with_score` with the dense and keyword paths running concurrently."""
        hits = await self.index.asearch(query, k, **self._search_kwargs(kwargs))
        return [(_to_document(h), h.score) for h in hits]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """`similarity_search` with the dense and keyword paths running concurrently."""
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        index: Any = None,
        ids: list[str] | None = None,
        access: AccessScope | None = None,
        all_access: bool = False,
        **kwargs: Any,
    ) -> IndexVectorStore:
        """Add the texts to `index` (an open HybridIndex) and return a view of it. The index embeds with its
        own embedder, so `embedding` must be None: `open_index(path, embedder=LangChainEmbedder(emb))`
        makes an index that embeds with a LangChain `Embeddings`."""
        if index is None or embedding is not None or kwargs:
            raise ConfigError(
                "IndexVectorStore.from_texts(texts, None, metadatas, index=open_index(path)): the index "
                "embeds with its own embedder (give open_index embedder=LangChainEmbedder(embeddings))"
            )
        store = cls(index, access=access, all_access=all_access)
        store.add_texts(texts, metadatas, ids=ids)
        return store
