"""Documents from an ingest request: a JSON `documents` list or multipart file uploads, plus shared `meta`."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragroute.tools.errors import InputError
from ragroute.tools.loaders import SUPPORTED_SUFFIXES, LoadFailure, load_file
from ragroute.tools.types import Document

if TYPE_CHECKING:  # only for annotations; the request object comes from the `serve` extra
    from starlette.requests import Request

FORMATS = ["text", "markdown"]
# one JSON document's fields: what documents_from_json accepts and what /ingest's OpenAPI body declares
DOCUMENT_PROPERTIES: dict[str, dict[str, Any]] = {
    "doc_id": {"type": "string", "minLength": 1, "description": "Its id (a write key: under its prefix)."},
    "text": {"type": "string", "minLength": 1},
    "title": {"type": "string"},
    "source": {"type": "string", "description": 'Where it came from (default "api:<doc_id>").'},
    "metadata": {"type": "object", "description": "Metadata fields (access_groups, version, ...)."},
    "format": {"type": "string", "enum": FORMATS, "default": "text"},
}
DOCUMENT_FIELDS = set(DOCUMENT_PROPERTIES)
META_DESCRIPTION = "Metadata for every document of the request (a document's own fields win)."
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def documents_from_json(items: Any) -> list[Document | LoadFailure]:
    """JSON document objects as `Document`s; a malformed one becomes a LoadFailure naming it, so the others
    are still ingested. InputError when `items` is no list, or when not one item is a document."""
    if not isinstance(items, list) or not items:
        raise InputError("documents must be a non-empty list of {doc_id, text, title?, metadata?, format?}")
    docs: list[Document | LoadFailure] = []
    for i, item in enumerate(items):
        try:
            docs.append(_document_from_json(item, f"documents[{i}]"))
        except InputError as exc:
            docs.append(LoadFailure(f"documents[{i}]", str(exc)))
    if all(isinstance(d, LoadFailure) for d in docs):  # nothing to ingest: one request error, not a report
        raise InputError("; ".join(d.message for d in docs[:3] if isinstance(d, LoadFailure)))
    return docs


def _document_from_json(item: Any, where: str) -> Document:
    """One JSON document object as a `Document` (InputError naming the bad field)."""
    if not isinstance(item, dict):
        raise InputError(f"{where} must be an object, got {type(item).__name__}")
    unknown = set(item) - DOCUMENT_FIELDS
    if unknown:
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)}")
    doc_id, text = item.get("doc_id"), item.get("text")
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise InputError(f"{where}.doc_id must be a non-empty string")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}.text must be a non-empty string")
    fmt = item.get("format", "text")
    if fmt not in FORMATS:
        raise InputError(f"{where}.format={fmt!r}; options: {FORMATS}")
    meta = item.get("metadata") or {}
    if not isinstance(meta, dict):
        raise InputError(f"{where}.metadata must be an object")
    return Document(
        doc_id=doc_id.strip(),
        text=text,
        title=str(item.get("title") or ""),
        source=str(item.get("source") or f"api:{doc_id.strip()}"),
        metadata=dict(meta),
        format=fmt,
    )


def documents_from_uploads(files: list[tuple[str, bytes]]) -> list[Any]:
    """Load uploaded files with the regular loaders (by file suffix); failures come back as LoadFailures."""
    out: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="ragroute-upload-") as tmp:
        for name, data in files:
            safe = _SAFE_NAME.sub("_", Path(name or "upload.txt").name).lstrip(".") or "upload.txt"
            path = Path(tmp) / safe
            path.write_bytes(data)
            for item in load_file(path, doc_id=safe):
                # the temporary path never shows; a failure keeps its suffix (the line of a .jsonl)
                where = item.source.removeprefix(str(path)) if isinstance(item, LoadFailure) else ""
                out.append(replace(item, source=f"upload:{safe}{where}"))
    return out


async def read_ingest_request(request: Request) -> tuple[list[Any], dict[str, Any] | None] | None:
    """(documents, meta) from a JSON or multipart ingest request; None for any other content type."""
    ctype = request.headers.get("content-type", "")
    meta: Any = None
    docs: list[Any]
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        files = [
            (getattr(v, "filename", None) or "upload.txt", await v.read())
            for k, v in form.multi_items()
            if hasattr(v, "read")
        ]
        raw_meta = form.get("meta")
        if isinstance(raw_meta, str) and raw_meta.strip():
            try:
                meta = json.loads(raw_meta)
            except json.JSONDecodeError as exc:
                raise InputError(f"meta is not valid JSON ({exc.msg})") from None
            except RecursionError:  # the guard checks JSON bodies, not the fields of a multipart form
                raise InputError("meta nests too deeply") from None
        if not files:
            raise InputError("multipart upload has no files (use field name 'files')")
        docs = await asyncio.to_thread(documents_from_uploads, files)
    elif ctype.startswith("application/json"):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InputError('body must be an object: {"documents": [...], "meta": {...}}')
        unknown = set(body) - {"documents", "meta"}
        if unknown:
            raise InputError(f"unknown field(s) {sorted(unknown)}; options: ['documents', 'meta']")
        meta = body.get("meta")
        docs = documents_from_json(body.get("documents"))
    else:
        return None
    if meta is not None and not isinstance(meta, dict):
        raise InputError("meta must be a JSON object of metadata for every document")
    return docs, meta


def ingest_openapi() -> dict[str, Any]:
    """/ingest's request body for OpenAPI (`openapi_extra`): the JSON documents or the multipart files it
    reads, so /docs can try it and schema fuzzers send real bodies."""
    document = {
        "type": "object",
        "properties": DOCUMENT_PROPERTIES,
        "required": ["doc_id", "text"],
        "additionalProperties": False,
    }
    as_json = {
        "type": "object",
        "properties": {
            "documents": {"type": "array", "items": document, "minItems": 1},
            "meta": {"type": "object", "description": META_DESCRIPTION},
        },
        "required": ["documents"],
        "additionalProperties": False,
    }
    suffixes = ", ".join(sorted(SUPPORTED_SUFFIXES))
    as_form = {
        "type": "object",
        "properties": {
            "files": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": f"Files to ingest, loaded by their suffix ({suffixes}).",
            },
            "meta": {"type": "string", "description": f"A JSON object. {META_DESCRIPTION}"},
        },
        "required": ["files"],
    }
    content = {"application/json": {"schema": as_json}, "multipart/form-data": {"schema": as_form}}
    return {"requestBody": {"required": True, "content": content}}
