"""The ASGI guard in front of every route: X-API-Key authentication and request body caps."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request
from ragroute.server.apidocs import LOGIN_PATH, LOGOUT_PATH, key_from_cookie, login_redirect
from ragroute.server.auth import Identity

API_KEY_HEADER = "x-api-key"
PUBLIC_PATHS = ("/health", "/ready", LOGIN_PATH, LOGOUT_PATH)


class GuardMiddleware:
    """Authenticates requests (X-API-Key) and caps body sizes before any route sees them (pure ASGI)."""

    def __init__(
        self,
        app: Any,
        *,
        keys: dict[str, Identity],
        anonymous: Identity | None,
        max_body_bytes: int,
        max_upload_bytes: int,
    ) -> None:
        self.app = app
        self.keys = keys
        self.anonymous = anonymous
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def _lookup(self, presented: str | None) -> Identity | None:
        if presented is None:
            return self.anonymous if not self.keys else None
        for key, ident in self.keys.items():  # compare every key in constant time
            if hmac.compare_digest(key.encode(), presented.encode()):
                return ident
        return None

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if path not in PUBLIC_PATHS:
            presented = headers.get(API_KEY_HEADER)
            if presented is None and self.keys:  # browsers (/docs, the playground): the /login cookie
                presented = key_from_cookie(headers, scope.get("method", "GET"))
            ident = self._lookup(presented)
            if ident is None:
                to_login = login_redirect(
                    scope.get("method", ""), path, scope.get("query_string", b"").decode("latin-1"), headers
                )
                if to_login is not None:  # a person opened a page: ask for the key instead of JSON 401
                    await _send_json(send, 303, {"detail": "log in first"}, {"location": to_login})
                    return
                msg = "missing X-API-Key header" if API_KEY_HEADER not in headers else "invalid API key"
                await _send_json(send, 401, {"detail": msg}, {"www-authenticate": "ApiKey"})
                return
            scope.setdefault("state", {})["identity"] = ident
        limit = self.max_upload_bytes if path.rstrip("/") == "/ingest" else self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, {"detail": "invalid Content-Length header"})
                return
            if int(declared) > limit:
                await _send_json(
                    send, 413, {"detail": f"request body is {declared} bytes; the limit is {limit}"}
                )
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") in ("POST", "PUT", "PATCH"):  # chunked body: buffer it up to the limit
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    await _send_json(
                        send, 413, {"detail": f"request body exceeds the limit of {limit} bytes"}
                    )
                    return
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


async def _send_json(send: Any, status: int, body: dict, extra: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def identity_of(request: Request) -> Identity:
    """The caller the guard let in (401 if a route is reached without one)."""
    ident = getattr(request.state, "identity", None)
    if ident is None:  # the middleware always sets it on protected paths
        raise HTTPException(401, "missing X-API-Key header")
    return ident
