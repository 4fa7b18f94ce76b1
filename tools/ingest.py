"""Ingestion pipeline: load -> merge metadata -> hash -> skip unchanged -> chunk -> upsert into the index.

One bad file never stops a batch: its failure is recorded in the `IngestReport` with a message and the
other documents are still written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ragroute.tools.chunking import (
    CHUNKER_VERSION,
    DEFAULT_CHILD_TOKENS,
    DEFAULT_PARENT_TOKENS,
    chunk_document,
)
from ragroute.tools.doc_ids import IdClaims, root_of
from ragroute.tools.errors import (
    ConfigError,
    InputError,
    RagrouteError,
    is_valid_unicode,
    printable,
    value_problem,
)
from ragroute.tools.lc_documents import as_source_documents
from ragroute.tools.loaders import LoadFailure, iter_source_files, load_path
from ragroute.tools.metadata import read_sidecar, resolve_metadata, validate_metadata
from ragroute.tools.pii import KEY_ENV, PiiRedactor
from ragroute.tools.types import Chunk, Document, Parent

DEFAULT_BATCH_SIZE = 64
MAX_METADATA_DEPTH = 100  # nested lists/objects in one document's metadata


class IngestTarget(Protocol):
    """What ingestion needs from an index (ragroute.tools.index.HybridIndex implements it)."""

    def document_hash(self, doc_id: str) -> str | None: ...

    def upsert_document(
        self,
        doc_id: str,
        chunks: list[Chunk],
        parents: list[Parent],
        *,
        content_hash: str,
        doc_metadata: dict[str, Any],
    ) -> str: ...

    def delete_document(self, doc_id: str) -> bool: ...


@dataclass
class IngestReport:
    """What an ingest run did: doc ids per outcome, failures with messages, chunks written, wall time."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks_written: int = 0
    seconds: float = 0.0
    # documents removed by `ingest_paths(..., prune=True)` because their source file is gone
    deleted: list[str] = field(default_factory=list)
    # PII replaced before indexing (redact_pii=...): entity type -> count, and whether it can be undone
    pii: dict[str, int] | None = None
    pii_reversible: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the CLI's --json."""
        return {
            "added": list(self.added),
            "updated": list(self.updated),
            "unchanged": list(self.unchanged),
            "failed": [{"source": s, "message": m} for s, m in self.failed],
            "counts": {
                "added": len(self.added),
                "updated": len(self.updated),
                "unchanged": len(self.unchanged),
                "failed": len(self.failed),
                "deleted": len(self.deleted),
            },
            "deleted": list(self.deleted),
            "chunks_written": self.chunks_written,
            "seconds": round(self.seconds, 3),
            **(
                {"pii": {"redacted": dict(self.pii), "reversible": self.pii_reversible}}
                if self.pii is not None
                else {}
            ),
        }


@dataclass
class _Prepared:
    doc: Document
    chunks: list[Chunk]
    parents: list[Parent]
    content_hash: str
    where: str


def content_hash(doc: Document, *, child_tokens: int, parent_tokens: int) -> str:
    """Hash of everything that shapes a document's chunks: text, title, metadata, format, chunker settings."""
    payload = {
        "text": doc.text,
        "title": doc.title,
        "format": doc.format,
        "metadata": doc.metadata,
        "chunker": [CHUNKER_VERSION, child_tokens, parent_tokens],
    }
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def prepare_metadata(
    doc: Document, *, cli: dict[str, Any] | None = None, use_sidecar: bool = True
) -> Document:
    """`doc` with metadata merged (CLI > sidecar > front matter/loader > defaults) and validated."""
    sidecar = read_sidecar(doc.source) if use_sidecar and doc.source and os.path.isfile(doc.source) else {}
    merged = resolve_metadata({"source": doc.source} if doc.source else {}, doc.metadata, sidecar, cli)
    title = str(merged.pop("title", "") or doc.title)
    return replace(doc, title=title, metadata=merged)


def _where(doc: Document) -> str:
    """How a failure names a document: the file, or file#id for records of a JSONL corpus."""
    if doc.format == "jsonl":
        return f"{doc.source}#{doc.doc_id}" if doc.source else doc.doc_id
    return doc.source or doc.doc_id


def _storable_problem(doc: Document) -> str | None:
    """Why `doc` cannot be stored (a lone surrogate from a JSON "\\ud800" escape, metadata nested too
    deep for the JSON writers); None when it can."""
    fields = {"doc_id": doc.doc_id, "title": doc.title, "text": doc.text, "source": doc.source}
    for name, value in fields.items():
        if isinstance(value, str) and not is_valid_unicode(value):
            return f"{name} contains invalid unicode (a lone surrogate)"
    return _metadata_problem(doc.metadata)


def _metadata_problem(meta: Any) -> str | None:
    """Why metadata cannot be stored (a lone surrogate, nested too deep); None when it can."""
    return value_problem(meta, "metadata", MAX_METADATA_DEPTH)


def _check_settings(child_tokens: int, parent_tokens: int, batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if child_tokens < 8:
        raise ConfigError(f"child_tokens must be >= 8, got {child_tokens}")
    if parent_tokens < child_tokens:
        raise ConfigError(f"parent_tokens ({parent_tokens}) must be >= child_tokens ({child_tokens})")


def pii_redactor(index: Any, redact_pii: bool | PiiRedactor | None) -> PiiRedactor | None:
    """The redactor an ingest uses: None (off), the one given, or for True a default one whose mapping is
    stored encrypted in `<index>/pii/` when RAGROUTE_PII_KEY is set (irreversible redaction otherwise)."""
    if redact_pii is None or redact_pii is False:
        return None
    if isinstance(redact_pii, PiiRedactor):
        return redact_pii
    if redact_pii is not True:
        raise ConfigError(f"redact_pii must be True, False or a PiiRedactor, got {redact_pii!r}")
    path = getattr(index, "path", None)
    if os.environ.get(KEY_ENV) and isinstance(path, str):
        return PiiRedactor(store_path=pii_store_path(path))
    return PiiRedactor()


def pii_store_path(index_path: str) -> str:
    """Where an index keeps its encrypted PII mappings."""
    return os.path.join(index_path, "pii")


def ingest_documents(
    index: IngestTarget,
    documents: Iterable[Any] | Any,
    *,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    child_tokens: int = DEFAULT_CHILD_TOKENS,
    parent_tokens: int = DEFAULT_PARENT_TOKENS,
    use_sidecar: bool = True,
    total: int | None = None,
    redact_pii: bool | PiiRedactor | None = None,
    replace_source: bool = False,
) -> IngestReport:
    """Ingest already-loaded documents (LoadFailures pass straight into the report); LangChain
    `Document`s and a LangChain `BaseLoader` are accepted too (lc_documents converts them).

    `redact_pii`: True or a `PiiRedactor` replaces PII (emails, phones, cards, IBANs, IPs, SSNs, cued
    names) in titles and texts with placeholders before anything is chunked, embedded or stored; a
    redacting run that replaced documents then compacts the index, so the raw values leave the disk.
    A document whose id holds one from another source fails unless `replace_source=True` (see doc_ids).
    """
    return _ingest(
        index,
        ((item, None) for item in as_source_documents(documents)),
        meta=meta,
        progress=progress,
        batch_size=batch_size,
        child_tokens=child_tokens,
        parent_tokens=parent_tokens,
        use_sidecar=use_sidecar,
        total=total,
        redact_pii=redact_pii,
        replace_source=replace_source,
    )


async def aingest_documents(index: IngestTarget, documents: Iterable[Any] | Any, **kw: Any) -> IngestReport:
    """`ingest_documents` in a worker thread (loading, chunking and embedding block), for async callers."""
    return await asyncio.to_thread(ingest_documents, index, documents, **kw)


def _ingest(
    index: IngestTarget,
    items: Iterable[tuple[Document | LoadFailure, str | None]],
    *,
    meta: dict[str, Any] | None,
    progress: bool,
    batch_size: int,
    child_tokens: int,
    parent_tokens: int,
    use_sidecar: bool,
    total: int | None,
    redact_pii: bool | PiiRedactor | None,
    replace_source: bool,
) -> IngestReport:
    """Ingest (document or failure, root folder or None) pairs; see ingest_documents."""
    _check_settings(child_tokens, parent_tokens, batch_size)
    problem = _metadata_problem(meta)
    if problem:
        raise InputError(f"meta: {problem}")
    cli = validate_metadata(meta or {})
    redactor = pii_redactor(index, redact_pii)
    report = IngestReport()
    if redactor is not None:
        report.pii, report.pii_reversible = {}, redactor.reversible
    started = time.perf_counter()
    claims = IdClaims(index, replace_source=replace_source)
    pending: list[_Prepared] = []
    for item, root in _progress(items, enabled=progress, total=total):
        if isinstance(item, LoadFailure):
            report.failed.append((item.source, item.message))
            continue
        where = _where(item)
        problem = _storable_problem(item)
        if problem:  # before any lookup: sqlite, hashing and tokenizers all reject a lone surrogate
            report.failed.append((printable(where), problem))
            continue
        try:
            doc = prepare_metadata(item, cli=cli, use_sidecar=use_sidecar)
        except InputError as exc:
            report.failed.append((where, str(exc)))
            continue
        doc_id, refusal = claims.claim(doc, root, where)
        if doc_id is None:
            report.failed.append((where, refusal))
            continue
        doc = replace(doc, doc_id=doc_id)
        if redactor is not None and report.pii is not None:
            # placeholders are deterministic per document, so an unchanged file still hashes the same
            doc, redaction = redactor.redact_document(doc)
            for kind, n in redaction.counts().items():
                report.pii[kind] = report.pii.get(kind, 0) + n
        digest = content_hash(doc, child_tokens=child_tokens, parent_tokens=parent_tokens)
        if index.document_hash(doc.doc_id) == digest:
            report.unchanged.append(doc.doc_id)
            continue
        chunks, parents = chunk_document(doc, child_tokens=child_tokens, parent_tokens=parent_tokens)
        if not chunks:
            report.failed.append((where, "no indexable text after parsing"))
            continue
        pending.append(_Prepared(doc, chunks, parents, digest, where))
        if len(pending) >= batch_size:
            _write(index, pending, report)
            pending = []
    if pending:
        _write(index, pending, report)
    backfill = getattr(index, "backfill_sentences", None)
    if callable(backfill):  # an index from an older version: its documents' sentence vectors, once
        backfill()
    compact = getattr(index, "compact", None)
    if redactor is not None and (report.added or report.updated) and callable(compact):
        # replaced raw versions must not stay in freed pages or Chroma's log, nor raw text read from the
        # files in the never-cleared tail Chroma writes into its HNSW files (see index/scrub.py)
        compact()
    report.seconds = time.perf_counter() - started
    return report


def ingest_paths(
    index: IngestTarget,
    paths: Iterable[str | os.PathLike[str]],
    *,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    child_tokens: int = DEFAULT_CHILD_TOKENS,
    parent_tokens: int = DEFAULT_PARENT_TOKENS,
    use_sidecar: bool = True,
    prune: bool = False,
    redact_pii: bool | PiiRedactor | None = None,
    replace_source: bool = False,
) -> IngestReport:
    """Load files/folders (recursive) and ingest them; doc ids are paths relative to each given folder,
    prefixed with the folder's name where another source already holds that id (see doc_ids);
    `replace_source=True` (CLI --replace) replaces the other source's document instead.

    With `prune=True`, documents previously ingested from under these paths whose source file no longer
    yields them are deleted (a file that failed to load this time keeps its old version).
    """
    names = [os.fspath(p) for p in paths]
    if not names:
        raise InputError("no paths to ingest")
    _check_settings(child_tokens, parent_tokens, batch_size)
    total = _expected_documents(names) if progress and sys.stderr.isatty() else None

    def results() -> Iterator[tuple[Document | LoadFailure, str | None]]:
        for path in names:
            root = root_of(path)
            for item in load_path(path):
                yield item, root

    if prune and not callable(getattr(index, "list_documents", None)):
        raise InputError("prune=True needs an index with list_documents()")
    report = _ingest(
        index,
        results(),
        meta=meta,
        progress=progress,
        batch_size=batch_size,
        child_tokens=child_tokens,
        parent_tokens=parent_tokens,
        use_sidecar=use_sidecar,
        total=total,
        redact_pii=redact_pii,
        replace_source=replace_source,
    )
    if prune:
        started = time.perf_counter()
        report.deleted = _prune(index, names, report)
        report.seconds += time.perf_counter() - started
    return report


def _expected_documents(paths: list[str]) -> int:
    """Documents `paths` should yield (one per file, one per non-blank JSONL line): the bar's total."""
    total = 0
    for path in paths:
        if not os.path.exists(path):
            continue
        for file in iter_source_files(path):
            if file.suffix.lower() != ".jsonl":
                total += 1
                continue
            try:
                with file.open("rb") as handle:
                    total += sum(1 for line in handle if line.strip())
            except OSError:
                total += 1  # the loader reports the failure itself
    return total


def _prune(index: Any, paths: list[str], report: IngestReport) -> list[str]:
    """Delete indexed documents whose source lies under `paths` but that this run did not produce."""
    present = set(report.added) | set(report.updated) | set(report.unchanged)
    failing: set[str] = set()
    for source, _ in report.failed:
        # failures name a file, file:LINE (JSONL line) or file#id (JSONL record); protect the whole file
        for candidate in (source, source.rsplit(":", 1)[0], source.split("#", 1)[0]):
            failing.add(os.path.abspath(candidate))
    roots = [os.path.abspath(p) for p in paths]
    deleted: list[str] = []
    for info in index.list_documents():
        doc_id, origin = info["doc_id"], (info.get("metadata") or {}).get("source")
        if doc_id in present or not isinstance(origin, str) or not origin:
            continue
        where = os.path.abspath(origin)
        if where in failing or not any(
            where == r or where.startswith(r.rstrip(os.sep) + os.sep) for r in roots
        ):
            continue
        if index.delete_document(doc_id):
            deleted.append(doc_id)
    return deleted


def delete_documents(index: IngestTarget, doc_ids: Iterable[str]) -> dict[str, list[str]]:
    """Remove documents from every store of the index: {"deleted": [...], "not_found": [...]}."""
    out: dict[str, list[str]] = {"deleted": [], "not_found": []}
    for doc_id in doc_ids:
        out["deleted" if index.delete_document(doc_id) else "not_found"].append(doc_id)
    return out


def _write(index: IngestTarget, batch: list[_Prepared], report: IngestReport) -> None:
    """Upsert a batch (one embedding call when the index supports it); isolate failures per document."""
    statuses: list[str] | None = None
    upsert_many = getattr(index, "upsert_documents", None)
    if upsert_many is not None and len(batch) > 1:
        try:
            statuses = list(
                upsert_many(
                    [(p.doc.doc_id, p.chunks, p.parents, p.content_hash, p.doc.metadata) for p in batch]
                )
            )
        except RagrouteError:
            statuses = None  # retry one by one below so that only the bad document fails
    errors: dict[int, str] = {}
    if statuses is None:
        statuses = []
        for i, p in enumerate(batch):
            try:
                status = index.upsert_document(
                    p.doc.doc_id,
                    p.chunks,
                    p.parents,
                    content_hash=p.content_hash,
                    doc_metadata=p.doc.metadata,
                )
            except RagrouteError as exc:
                status, errors[i] = "failed", str(exc)
            statuses.append(status)
    for i, (p, status) in enumerate(zip(batch, statuses, strict=True)):
        if status in ("added", "updated"):
            getattr(report, status).append(p.doc.doc_id)
            report.chunks_written += len(p.chunks)
        elif status == "unchanged":
            report.unchanged.append(p.doc.doc_id)
        else:
            report.failed.append((p.where, errors.get(i, f"index returned status {status!r}")))


def _progress(items: Iterable[Any], *, enabled: bool, total: int | None) -> Iterable[Any]:
    """`items` wrapped in a tqdm bar on an interactive stderr; unchanged otherwise."""
    if not enabled or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, unit="doc", desc="ingest", file=sys.stderr)
