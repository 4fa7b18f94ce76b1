"""GET /metrics (Prometheus exposition) and the ASGI middleware that counts and times every request.

Who may scrape: with API keys configured, an unrestricted key only (X-API-Key, or Prometheus's
`authorization` Bearer credentials); a restricted key gets 403. The numbers hold no document text, ids,
questions or key names, but they count every caller's traffic (like /stats's cache levels, which only an
unrestricted key sees), so a key limited to some groups must not watch the others'. A server without keys
answers anyone already, and its /metrics is open too.

Requests are labelled by route template (`/documents/{doc_id}`), never by raw path, so a scan of random
paths adds one `unmatched` series, not one per path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from ragroute.runtime import caching
from ragroute.runtime.metrics import Metrics, recording
from ragroute.server.guard import identity_of
from starlette.routing import Match, Router

METRICS_PATH = "/metrics"


def route_of(router: Router, scope: dict[str, Any]) -> str:
    """The template of the route `scope` goes to ("unmatched" when none)."""
    partial = None
    for route in router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
        if match == Match.PARTIAL and partial is None:  # the path matches, the method does not (405)
            partial = str(getattr(route, "path", "unmatched"))
    return partial or "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request; the graph runs a request makes record into `metrics`."""

    def __init__(self, app: Any, *, metrics: Metrics, router: Router) -> None:
        self.app = app
        self.metrics = metrics
        self.router = router

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        route = route_of(self.router, scope)
        status = 500  # an exception before the response started
        started = time.perf_counter()

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            with recording(self.metrics):
                await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_progress.dec()
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.request_seconds.labels(method, route).observe(time.perf_counter() - started)


def add_metrics(app: FastAPI, keys: dict[str, Any]) -> Metrics:
    """Add GET /metrics and the request middleware to `app` (call it after the other middleware, so
    requests the guard refuses are counted too); returns the app's own Metrics."""
    metrics = Metrics(cache_stats=caching.stats)

    @app.get(METRICS_PATH, include_in_schema=False)
    async def scrape(request: Request) -> Response:
        """Prometheus text exposition of this server's metrics (an unrestricted key when keys are set)."""
        if keys and identity_of(request).scope() is not None:
            raise HTTPException(403, "/metrics needs an unrestricted API key")
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MetricsMiddleware, metrics=metrics, router=app.router)
    return metrics
