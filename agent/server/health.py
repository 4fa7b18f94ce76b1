"""Operational routes: /health (liveness), /ready (index and embedder work), /stats (index, caches)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ragroute.runtime import caching, providers
from ragroute.server.guard import identity_of
from ragroute.server.state import IndexHolder


def add_health_routes(app: FastAPI, holder: IndexHolder, index_dir: str) -> None:
    """Add GET /health, /ready and /stats to `app`, reading the index through `holder`."""

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: the index opens and the embedder produces a vector."""

        def check() -> dict[str, Any]:
            index = holder.get()
            stats = index.stats()
            vec = providers.embedder()(["readiness probe"])
            return {
                "documents": stats.get("documents"),
                "chunks": stats.get("chunks"),
                "dim": int(vec.shape[1]),
            }

        try:
            info = await asyncio.to_thread(check)
        except Exception as exc:  # readiness reports any failure instead of raising
            return JSONResponse(
                {"status": "unavailable", "detail": f"{type(exc).__name__}: {exc}"[:300]}, 503
            )
        return JSONResponse({"status": "ready", "index_dir": index_dir, **info})

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        """Index statistics plus this server's cache levels (hits, misses, hit rate, size)."""
        identity_of(request)
        index_stats = await asyncio.to_thread(lambda: holder.get().stats())
        return {"index": index_stats, "cache": caching.stats()}
