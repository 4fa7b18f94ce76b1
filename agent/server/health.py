"""Operational routes: /health (liveness), /ready (index and embedder work), /stats (what the caller sees)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ragroute.runtime import caching, providers
from ragroute.server.guard import identity_of
from ragroute.server.state import IndexHolder

log = logging.getLogger("ragroute.server")


def add_health_routes(app: FastAPI, holder: IndexHolder) -> None:
    """Add GET /health, /ready and /stats to `app`, reading the index through `holder`."""

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: the index opens and the embedder produces a vector (status only: no key needed, so
        nothing about the index's contents)."""

        def check() -> None:
            holder.get().stats()  # reads the docstore, Chroma and BM25; the counts are not shown
            providers.embedder()(["readiness probe"])

        try:
            await asyncio.to_thread(check)
        except Exception as exc:  # readiness reports any failure instead of raising
            # the reason (paths, settings) goes to the log: this route answers callers without a key
            log.warning("not ready: %s: %s", type(exc).__name__, exc)
            return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        """Index statistics as far as the caller may see them; the whole index and this server's cache
        levels (hits, misses, hit rate, size) only for an unrestricted key."""
        ident = identity_of(request)
        scope = ident.scope()
        index_stats = await asyncio.to_thread(lambda: holder.get().stats(access=scope))
        if scope is not None:  # cache levels count every caller's questions
            return {"index": index_stats}
        return {"index": index_stats, "cache": caching.stats()}
