"""The ASGI guard in front of every route: API-key authentication (ragroute.server.auth: X-API-Key, a
Bearer token, or the /login cookie), request body caps and JSON sanity.

A JSON body must be UTF-8 and nest at most `MAX_JSON_DEPTH` levels before any route parses it: the
parsers, validators and serializers behind the routes recurse per level, so a hostile body could
otherwise exhaust the stack (RecursionError) or fail to decode deep inside a handler.
"""

from __future__ import annotations

import asyncio
import json
import operator
import re
from collections.abc import Awaitable, Callable
from itertools import accumulate, count
from typing import Any

from fastapi import HTTPException, Request
from ragroute.server.apidocs import LOGIN_PATH, LOGOUT_PATH, key_from_cookie, login_redirect
from ragroute.server.auth import Identity, authenticate, presented_key

OPENAI_PREFIX = "/v1/"  # the OpenAI-compatible routes (openai_compat)
PUBLIC_PATHS = ("/health", "/ready", LOGIN_PATH, LOGOUT_PATH)
# deep enough for any real request (a filter stops at 32 $and levels, about 70 JSON levels), shallow
# enough that nothing recursive behind the routes comes near Python's recursion limit
MAX_JSON_DEPTH = 100
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # minus one: +1 opens, -1 closes
_INLINE_CHECK_BYTES = 64_000


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

    def _presented_key(self, headers: dict[str, str], method: str) -> str | None:
        """The key a request presents (auth.presented_key), else, with keys, a browser's /login cookie."""
        presented = presented_key(headers, self.keys)
        if presented is None and self.keys:  # browsers (/docs, the playground) send the cookie
            return key_from_cookie(headers, method)
        return presented

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if path not in PUBLIC_PATHS:
            presented = self._presented_key(headers, scope.get("method", "GET"))
            ident = authenticate(self.keys, presented, self.anonymous)
            if ident is None:
                to_login = login_redirect(
                    scope.get("method", ""), path, scope.get("query_string", b"").decode("latin-1"), headers
                )
                if to_login is not None:  # a person opened a page: ask for the key instead of JSON 401
                    await _send_json(send, 303, {"detail": "log in first"}, {"location": to_login})
                    return
                sent_key = presented_key(headers, self.keys) is not None
                msg = "invalid API key" if sent_key else "missing X-API-Key header"
                await _refuse(send, path, 401, msg, {"www-authenticate": "ApiKey"})
                return
            scope.setdefault("state", {})["identity"] = ident
        limit = self.max_upload_bytes if path.rstrip("/") == "/ingest" else self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, path, 400, "invalid Content-Length header")
                return
            if int(declared) > limit:
                await _refuse(send, path, 413, f"request body is {declared} bytes; the limit is {limit}")
                return
        as_json = _parsed_as_json(path, headers.get("content-type", ""))
        if scope.get("method") not in ("POST", "PUT", "PATCH") or (declared is not None and not as_json):
            await self.app(scope, receive, send)
            return
        # a body without Content-Length is buffered to enforce the limit; a JSON body to check it
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _refuse(send, path, 413, f"request body exceeds the limit of {limit} bytes")
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        problem = None
        if as_json:  # a big body is checked off the event loop (about 0.15 s per MB of brackets)
            big = len(body) > _INLINE_CHECK_BYTES
            problem = await asyncio.to_thread(json_body_problem, body) if big else json_body_problem(body)
        if problem:
            await _refuse(send, path, 422, problem)
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _parsed_as_json(path: str, content_type: str) -> bool:
    """Whether a route parses this body as JSON: a JSON content type, or any body under /ask (langserve)."""
    ctype = content_type.lower()
    if ctype.startswith(("multipart/", "application/x-www-form-urlencoded")):
        return False
    return "json" in ctype or path.startswith("/ask/")


def json_body_problem(body: bytes) -> str | None:
    """Why `body` cannot be a JSON request (not UTF-8, nested too deep); None when it may be parsed."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"request body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start})"
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return None
    # depth = the highest running sum of +1 per opening and -1 per closing bracket outside strings
    steps = _JSON_STRING.sub(b"", body).translate(_BRACKET_STEP, _NOT_BRACKET)
    depth = max(map(operator.sub, accumulate(steps), count(1)), default=0)
    if depth > MAX_JSON_DEPTH:
        return f"request body nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
    return None


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error object, {"message", "type", "param", "code"}, which OpenAI clients raise from."""
    kind = {401: "authentication_error", 404: "not_found_error"}.get(status, "invalid_request_error")
    return {"message": message, "type": "api_error" if status >= 500 else kind, "param": param, "code": code}


async def _refuse(
    send: Any, path: str, status: int, detail: str, extra: dict[str, str] | None = None
) -> None:
    """A JSON error `{"detail": ...}`; under /v1/ also OpenAI's `error` object, so its clients show it."""
    body: dict[str, Any] = {"detail": detail}
    if path.startswith(OPENAI_PREFIX):
        body["error"] = openai_error(status, detail)
    await _send_json(send, status, body, extra)


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
