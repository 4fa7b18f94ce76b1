"""LangChain `Document`s and document loaders as ragroute source documents.

Ingest accepts them at its entry, so any LangChain loader (TextLoader, DirectoryLoader, PyPDFLoader, ...)
can feed an index. langchain_core is imported only when an item is not one of ours, so `import
ragroute.tools.ingest` stays cheap.

A LangChain document's doc id, first found wins: `Document.id`; metadata "doc_id" (a key the chunker
reserves, so it is taken out of the metadata); metadata "id"; its "source" with the loader's position in
it (`report.pdf#page=3`, `rows.csv#row=7`), so the pages or rows of one file do not replace each other; a
random id (uuid4) when it has none of these.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from ragroute.tools.errors import InputError
from ragroute.tools.loaders import LoadFailure
from ragroute.tools.types import SourceDocument

# metadata keys LangChain loaders use for a document's position inside its source file
POSITION_KEYS = ("page", "row", "start_index")
_FORMATS = {".md": "markdown", ".markdown": "markdown"}


def langchain_doc_id(page: Any) -> str:
    """The ragroute doc id of a LangChain document (see the module docstring)."""
    meta = page.metadata or {}
    for value in (page.id, meta.get("doc_id"), meta.get("id")):
        if value is not None and str(value).strip():
            return str(value).strip()
    source = str(meta.get("source") or "").strip()
    if source:
        where = [f"{key}={meta[key]}" for key in POSITION_KEYS if meta.get(key) is not None]
        return f"{source}#{'&'.join(where)}" if where else source
    return str(uuid.uuid4())


def from_langchain(page: Any, *, doc_id: str | None = None) -> SourceDocument:
    """A SourceDocument from a LangChain Document: page_content -> text, metadata kept as it is."""
    meta = {k: v for k, v in (page.metadata or {}).items() if k != "doc_id"}
    source = str(meta.get("source") or "")
    suffix = source[source.rfind(".") :].lower() if "." in source else ""
    return SourceDocument(
        doc_id=doc_id or langchain_doc_id(page),
        text=page.page_content,
        title=str(meta.get("title") or ""),
        source=source,
        metadata=meta,
        format=_FORMATS.get(suffix, "text"),
    )


def _is_loader(obj: Any) -> bool:
    if not callable(getattr(obj, "lazy_load", None)):
        return False
    from langchain_core.document_loaders import BaseLoader

    return isinstance(obj, BaseLoader)


def as_source_documents(items: Any) -> Iterator[SourceDocument | LoadFailure]:
    """Our documents and load failures as they are; LangChain Documents converted; a LangChain
    `BaseLoader` read lazily. InputError naming the type for anything else."""
    if _is_loader(items):
        items = items.lazy_load()
    if not isinstance(items, Iterable) or isinstance(items, str | bytes):
        raise InputError(
            "documents must be an iterable of documents or a LangChain BaseLoader, "
            f"got {type(items).__name__}"
        )
    for item in items:
        if isinstance(item, SourceDocument | LoadFailure):
            yield item
            continue
        from langchain_core.documents import Document as LCDocument

        if not isinstance(item, LCDocument):
            raise InputError(
                f"cannot ingest a {type(item).__name__}: expected a ragroute SourceDocument, a LoadFailure "
                "or a LangChain Document"
            )
        if not isinstance(item.page_content, str):  # one bad page fails alone, like a bad file
            where = str((item.metadata or {}).get("source") or item.id or "document")
            yield LoadFailure(where, f"page_content must be a string, got {type(item.page_content).__name__}")
            continue
        yield from_langchain(item)
