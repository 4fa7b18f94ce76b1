"""Write routes: POST /ingest (JSON documents or file uploads), DELETE /documents/{id} (soft unless
?hard=true) and POST /documents/{id}/restore. Which ids a key may write is `policy.may_write`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ragroute.server.guard import identity_of
from ragroute.server.policy import may_write, refused_write, split_writable, write_refusal
from ragroute.server.state import IndexHolder, ServerSettings
from ragroute.server.uploads import ingest_openapi, read_ingest_request
from ragroute.tools.ingest import ingest_documents


def _hard_delete(hard: bool | None, soft: bool | None) -> bool:
    """?hard=true asks for a hard delete; the older ?soft=false means the same; the default is soft."""
    if hard is not None and soft is not None and hard == soft:
        raise ValueError(f"?hard={str(hard).lower()} and ?soft={str(soft).lower()} contradict each other")
    return hard if hard is not None else soft is False


def add_document_routes(app: FastAPI, holder: IndexHolder, settings: ServerSettings) -> None:
    """Add POST /ingest, DELETE /documents/{doc_id} and POST /documents/{doc_id}/restore to `app`."""

    @app.post("/ingest", openapi_extra=ingest_openapi())
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
            # hidden and missing ids outside the key's own prefix get the same refusal (policy.may_write)
            allowed, denied = split_writable(index, docs, ident)
            report = ingest_documents(
                index,
                allowed,
                meta=meta,
                progress=False,
                use_sidecar=False,
                redact_pii=settings.redact_pii,
                # a writer names its doc ids itself and may_write already decided which it may replace
                replace_source=True,
            )
            for doc in denied:
                report.failed.append((doc.doc_id, refused_write(doc.doc_id, ident)))
            return report.to_dict()

        report = await asyncio.to_thread(run)
        status = 200 if report["counts"]["failed"] == 0 or len(docs) > report["counts"]["failed"] else 422
        if status == 422 and report["failed"]:  # nothing written: one line to read beside the report
            first = report["failed"][0]
            report["detail"] = f"no document was ingested; {first['source']}: {first['message']}"
        return JSONResponse(report, status_code=status)

    @app.delete("/documents/{doc_id:path}")
    async def delete_document(
        doc_id: str, request: Request, hard: bool | None = None, soft: bool | None = None
    ) -> JSONResponse:
        """Delete one document (all its chunks): into the trash (restorable until purged), or ?hard=true."""
        ident = identity_of(request)
        refusal = write_refusal(ident, "delete")
        if refusal:
            return JSONResponse({"detail": refusal}, 403)
        try:
            is_hard = _hard_delete(hard, soft)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, 422)

        def run() -> bool:
            index = holder.get()
            # a document the key may not write (hidden or missing) gets the answer a missing one gets
            return may_write(index, doc_id, ident) and index.delete_document(doc_id, soft=not is_hard)

        if not await asyncio.to_thread(run):
            return JSONResponse({"detail": f"no document with doc_id {doc_id!r}"}, 404)
        return JSONResponse({"deleted": doc_id, "soft": not is_hard})

    @app.post("/documents/{doc_id:path}/restore")
    async def restore_document(doc_id: str, request: Request) -> JSONResponse:
        """Bring a soft-deleted document back; 404 when it is not in the trash or the key may not write it."""
        ident = identity_of(request)
        refusal = write_refusal(ident, "restore")
        if refusal:
            return JSONResponse({"detail": refusal}, 403)

        def run() -> bool:
            index = holder.get()
            return may_write(index, doc_id, ident) and index.restore_document(doc_id)

        if not await asyncio.to_thread(run):
            return JSONResponse({"detail": f"no soft-deleted document with doc_id {doc_id!r}"}, 404)
        return JSONResponse({"restored": doc_id})
