"""Write routes: POST /ingest (JSON documents or file uploads) and DELETE /documents/{id}."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ragroute.server.guard import identity_of
from ragroute.server.policy import can_write, split_writable, write_refusal
from ragroute.server.state import IndexHolder, ServerSettings
from ragroute.server.uploads import read_ingest_request
from ragroute.tools.ingest import ingest_documents

DENIED_DOCUMENT = "this API key may not write this document id"


def add_document_routes(app: FastAPI, holder: IndexHolder, settings: ServerSettings) -> None:
    """Add POST /ingest and DELETE /documents/{doc_id} to `app`, writing the index through `holder`."""

    @app.post("/ingest")
    async def ingest(request: Request) -> JSONResponse:
        """Ingest JSON documents ({"documents": [...], "meta": {...}}) or multipart files (+ meta field)."""
        ident = identity_of(request)
        refusal = write_refusal(ident, "ingest")
        if refusal:
            return JSONResponse({"detail": refusal}, 403)
        parsed = await read_ingest_request(request)
        if parsed is None:
            return JSONResponse(
                {"detail": "send application/json {documents: [...]} or multipart/form-data files"}, 415
            )
        docs, meta = parsed

        def run() -> dict[str, Any]:
            index = holder.get()
            # never let a key overwrite a document it cannot read (same message whether or not it exists)
            allowed, denied = split_writable(index, docs, ident)
            report = ingest_documents(
                index,
                allowed,
                meta=meta,
                progress=False,
                use_sidecar=False,
                redact_pii=settings.redact_pii,
            )
            for doc in denied:
                report.failed.append((doc.doc_id, DENIED_DOCUMENT))
            return report.to_dict()

        report = await asyncio.to_thread(run)
        status = 200 if report["counts"]["failed"] == 0 or len(docs) > report["counts"]["failed"] else 422
        return JSONResponse(report, status_code=status)

    @app.delete("/documents/{doc_id:path}")
    async def delete_document(doc_id: str, request: Request, soft: bool = False) -> JSONResponse:
        """Delete one document (all its chunks) by id; ?soft=true keeps it restorable until purged."""
        ident = identity_of(request)
        refusal = write_refusal(ident, "delete")
        if refusal:
            return JSONResponse({"detail": refusal}, 403)

        def run() -> bool:
            index = holder.get()
            # a document the key cannot read looks exactly like a missing one
            return can_write(index, doc_id, ident) and index.delete_document(doc_id, soft=soft)

        deleted = await asyncio.to_thread(run)
        if not deleted:
            return JSONResponse({"detail": f"no document with doc_id {doc_id!r}"}, 404)
        return JSONResponse({"deleted": doc_id, **({"soft": True} if soft else {})})
