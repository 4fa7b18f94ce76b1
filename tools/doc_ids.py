"""Which doc id an ingested document gets, so that no source silently replaces another source's document.

A document's source is its `source` metadata: a file path for files (what the loader saw, or what front
matter, a sidecar or --meta set), "api:<doc_id>" for JSON documents sent to the server, "upload:<name>"
for uploaded files. An ingest of folders also knows each document's *root*: the resolved folder it was
found under (a single file's parent folder).

The id scheme keeps today's ids wherever nothing collides:

- a file's id is its path relative to the root (`README.md`); a JSONL record's id is its `_id`. Indexes
  built before keep updating in place, because a stored document counts as the same source when its
  source is the same string or lies under the same root.
- when that id is taken by another source (an earlier folder in the same run, or a document already in
  the index or its trash), a folder's document is namespaced with the root's name (`p2/README.md`), then,
  if that is taken too, with the name and a hash of the resolved root path (`p2@1a2b3c4d/README.md`).
  A later ingest of the same folder finds the same id again, since the first candidate it owns wins.
- documents given without a root (API JSON documents, uploads) keep the id their sender chose; taken by
  another source, they fail with a message instead.
- `replace_source=True` (CLI `--replace`) takes the first candidate not claimed earlier in the same run,
  replacing whatever another source stored under it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ragroute.tools.types import Document

_UNKNOWN = object()


def root_of(path: str) -> str:
    """The resolved folder a path's documents belong to: the folder itself, or a file's parent folder."""
    real = os.path.realpath(path)
    return real if os.path.isdir(real) else os.path.dirname(real)


def _under(source: str, root: str) -> bool:
    real = os.path.realpath(source)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


class IdClaims:
    """The ids one ingest run has handed out, checked against the sources the index already holds."""

    def __init__(self, index: Any, *, replace_source: bool = False) -> None:
        self.index = index
        self.replace_source = replace_source
        self._claimed: dict[str, tuple[str, str]] = {}  # doc id -> (owner, where), for this run
        self._trash: dict[str, Any] | None = None

    def claim(self, doc: Document, root: str | None, where: str) -> tuple[str | None, str]:
        """(doc id for `doc`, "") or (None, why it cannot be ingested); `doc` has merged metadata."""
        source = doc.metadata.get("source") or doc.source
        owner = root if root is not None else str(source or "")
        refused = ""
        for doc_id in self._candidates(doc.doc_id, root):
            taken = self._claimed.get(doc_id)
            if taken is not None:
                if taken[0] == owner or root is None:
                    return None, f"duplicate doc_id {doc_id!r} (already ingested from {taken[1]})"
                continue
            stored = self._stored_source(doc_id)
            if self.replace_source or self._same(stored, source, root):
                self._claimed[doc_id] = (owner, where)
                return doc_id, ""
            refused = refused or (
                f"doc_id {doc_id!r} already holds a document from {stored!r}; not replacing it with one "
                f"from {source!r} (replace_source=True, or --replace, replaces it)"
            )
        return None, refused or f"no free doc_id for {doc.doc_id!r}"

    @staticmethod
    def _candidates(doc_id: str, root: str | None) -> list[str]:
        if root is None:
            return [doc_id]
        name = os.path.basename(root.rstrip(os.sep)) or "root"
        digest = hashlib.sha256(root.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return [doc_id, f"{name}/{doc_id}", f"{name}@{digest}/{doc_id}"]

    def _stored_source(self, doc_id: str) -> Any:
        """The source of the live or soft-deleted document `doc_id`: None if free, _UNKNOWN if unknown."""
        lookup = getattr(self.index, "document_metadata", None)
        meta = lookup(doc_id) if callable(lookup) else None
        if meta is None:
            if self._trash is None:
                listing = getattr(self.index, "deleted_documents", None)
                rows = listing() if callable(listing) else []
                self._trash = {r["doc_id"]: (r.get("metadata") or {}).get("source", _UNKNOWN) for r in rows}
            if doc_id not in self._trash:
                return None
            return self._trash[doc_id]
        return meta.get("source", _UNKNOWN)

    @staticmethod
    def _same(stored: Any, source: Any, root: str | None) -> bool:
        """Whether the stored document came from the incoming document's source (free ids count)."""
        if stored is None or stored is _UNKNOWN or not isinstance(stored, str) or not stored:
            return True  # free, or stored without a source by an older version: nothing to protect
        if stored == source:
            return True
        return root is not None and ":" not in stored.split(os.sep, 1)[0] and _under(stored, root)
