"""The MCP server: ragroute's `search` and `ask` as tools over stdio or streamable HTTP, scoped to the caller.

Access is the server's decision, never a tool argument: a stdio server runs as the one identity it was
started with (`--api-key`, or public documents only when no keys are configured); over HTTP `ApiKeyGuard`
authenticates every request (X-API-Key or `Authorization: Bearer`) and the tool runs as that request's key.
A `filters` argument can only narrow what the caller's scope already admits. A passage's or citation's
`source` names no file on the server (`server.policy.without_server_paths`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from ragroute.api import aask
from ragroute.context import Context as RunContext
from ragroute.runtime import tracing
from ragroute.server.auth import (
    ANONYMOUS,
    Identity,
    authenticate,
    identity_for_key,
    load_api_keys,
    presented_key,
)
from ragroute.server.policy import without_server_paths
from ragroute.server.state import DEFAULT_MAX_QUESTION_CHARS, IndexHolder
from ragroute.tools.errors import ConfigError, RagrouteError
from ragroute.tools.filters import parse_filter
from ragroute.tools.index.config import is_milvus
from ragroute.tools.retrieval_tools import MAX_TOOL_K, hit_to_tool_dict
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("ragroute.mcp")

IDENTITY_KEY = "ragroute_identity"  # where ApiKeyGuard leaves the caller in the ASGI scope's state
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
INSTRUCTIONS = (
    "ragroute answers from a private knowledge base. Use `search` to find passages (hybrid keyword + "
    "semantic) and `ask` for a cited answer; cite sources by their doc_id. Only documents the caller may "
    "read are ever searched."
)

Text = Annotated[str, Field(min_length=1, max_length=DEFAULT_MAX_QUESTION_CHARS)]
Filters = Annotated[
    dict[str, Any] | None,
    Field(
        description='Optional Mongo-style metadata filter, e.g. {"doc_type": "technical"}, '
        '{"version": {"$gte": "2.10.0"}}, {"$or": [{"category": "ops"}, {"language": "de"}]}. '
        "Operators: $eq $ne $in $nin $gt $gte $lt $lte $and $or. It narrows the results; it cannot "
        "widen the caller's access."
    ),
]


class Passage(BaseModel):
    """One search hit as a tool returns it (tools.retrieval_tools.hit_to_tool_dict)."""

    chunk_id: str
    doc_id: str
    title: str
    section: str
    source: str
    score: float
    parent_id: str | None
    text: str


class SearchResult(BaseModel):
    """What `search` returns: the best passages, best first."""

    hits: list[Passage]


class Source(BaseModel):
    """One numbered source an answer cites."""

    n: int
    chunk_id: str
    doc_id: str
    title: str
    section: str
    source: str
    quote: str


class Answer(BaseModel):
    """What `ask` returns: the answer, its citations and how far to trust it."""

    answer: str
    citations: list[Source]
    confidence: float
    faithfulness: float
    abstained: bool
    route: str


def stdio_identity(keys: Mapping[str, Identity], api_key: str | None) -> Identity:
    """Who a stdio server runs as: `api_key`'s identity, or public documents only when no keys exist."""
    if not keys:
        if api_key:
            raise ConfigError(
                "--api-key was given but no API keys are configured "
                "(--api-keys, $RAGROUTE_API_KEYS or $RAGROUTE_API_KEYS_FILE)"
            )
        return ANONYMOUS
    if not api_key:
        raise ConfigError(
            "API keys are configured: pass --api-key KEY (or set $RAGROUTE_API_KEY) to choose who this "
            "server runs as"
        )
    ident = identity_for_key(keys, api_key)
    if ident is None:
        raise ConfigError("--api-key is not one of the configured API keys")
    return ident


def _caller(ctx: Context, fixed: Identity | None) -> Identity:
    """The identity a tool call runs as: the HTTP request's (set by ApiKeyGuard), else the stdio one."""
    request = ctx.request_context.request
    if request is None:  # stdio: one caller per process
        if fixed is None:
            raise ToolError("this server has no caller identity configured")
        return fixed
    ident = request.scope.get("state", {}).get(IDENTITY_KEY)
    if not isinstance(ident, Identity):  # a request that did not pass the guard sees nothing
        raise ToolError("this request was not authenticated")
    return ident


def _check(text: str, name: str, filters: dict[str, Any] | None) -> str:
    """`text` stripped; ToolError for a blank one or a filter that does not parse."""
    if not text.strip():
        raise ToolError(f"{name} must not be empty")
    try:
        parse_filter(filters)
    except (RagrouteError, TypeError, ValueError) as exc:
        raise ToolError(f"bad filters: {exc}") from None
    return text.strip()


def build_server(
    holder: IndexHolder,
    *,
    identity: Identity | None = None,
    llm: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
) -> FastMCP:
    """The FastMCP server with `search` and `ask` over `holder`'s index.

    `identity`: who a stdio session runs as; over HTTP every request's own key decides (see ApiKeyGuard).
    `host`/`port`: where streamable HTTP listens (a loopback host turns on DNS-rebinding protection)."""
    server = FastMCP(
        "ragroute",
        instructions=INSTRUCTIONS,
        host=host,
        port=port,
        log_level=log_level.upper(),  # type: ignore[arg-type]  # one of serve's --log-level choices
        stateless_http=True,  # every request stands alone: no session outlives the key that opened it
        json_response=True,
    )
    read_only = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)

    @server.tool(annotations=read_only, structured_output=True)
    async def search(
        query: Text,
        ctx: Context,
        k: Annotated[int, Field(ge=1, le=MAX_TOOL_K, description="How many passages to return.")] = 5,
        filters: Filters = None,
    ) -> SearchResult:
        """Search the knowledge base (hybrid keyword + semantic): the best passages with chunk_id, doc_id,
        title, section, source, score and text."""
        who = _caller(ctx, identity)
        query = _check(query, "query", filters)
        index = await asyncio.to_thread(holder.get)  # the first call opens it off the event loop
        try:
            hits = await index.asearch(query, k=k, filters=filters, access=who.scope())
        except RagrouteError as exc:
            raise ToolError(str(exc)) from None
        return SearchResult(hits=[Passage(**without_server_paths(hit_to_tool_dict(h))) for h in hits])

    @server.tool(annotations=read_only, structured_output=True)
    async def ask(question: Text, ctx: Context, filters: Filters = None) -> Answer:
        """Answer a question from the knowledge base with numbered citations (doc_id, title, quote);
        abstained is true when the sources do not answer it."""
        who = _caller(ctx, identity)
        question = _check(question, "question", filters)
        await asyncio.to_thread(holder.get)  # opened off the event loop before the graph searches it
        try:
            out = await aask(
                question,
                providers=holder.providers(),
                index_dir=holder.index_dir,
                llm=llm,
                filters=filters,
                extra={"user_id": who.user},  # the trace's user
                **who.configurable(),
            )
        except RagrouteError as exc:
            raise ToolError(str(exc)) from None
        return Answer(
            answer=out.get("answer") or "",
            citations=[Source(**c) for c in without_server_paths(out.get("citations") or [])],
            confidence=float(out.get("confidence") or 0.0),
            faithfulness=float(out.get("faithfulness") or 0.0),
            abstained=bool(out.get("abstained")),
            route=out.get("route") or "",
        )

    return server


class ApiKeyGuard:
    """ASGI guard for streamable HTTP: each request's X-API-Key or Bearer key picks its caller (401 without).

    With no keys configured, requests run as `anonymous` (public documents only) and a Bearer token is
    ignored, as by the HTTP server's guard (ragroute.server.auth.presented_key)."""

    def __init__(self, app: ASGIApp, keys: Mapping[str, Identity], anonymous: Identity = ANONYMOUS) -> None:
        self.app = app
        self.keys = dict(keys)
        self.anonymous = anonymous

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: the MCP session manager starts and stops with the server
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        presented = presented_key(headers, self.keys)
        ident = authenticate(self.keys, presented, self.anonymous)
        if ident is None:
            reason = (
                "missing API key (X-API-Key or Authorization: Bearer)"
                if presented is None
                else "invalid API key"
            )
            body = json.dumps({"detail": reason}).encode()
            headers_out = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="ragroute"'),
            ]
            await send({"type": "http.response.start", "status": 401, "headers": headers_out})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})[IDENTITY_KEY] = ident
        await self.app(scope, receive, send)


def http_app(server: FastMCP, keys: Mapping[str, Identity]) -> ApiKeyGuard:
    """The streamable HTTP app (MCP endpoint at /mcp) behind the API-key guard."""
    return ApiKeyGuard(server.streamable_http_app(), keys)


def serve(
    index_dir: str | None = None,
    *,
    api_keys: Mapping[str, Any] | str | None = None,
    api_key: str | None = None,
    llm: str | None = None,
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
) -> None:
    """Run the MCP server until its client goes (stdio) or it is stopped (HTTP).

    `api_keys`: as for `load_api_keys` (None: the environment); `api_key`: the stdio caller."""
    path = RunContext(index_dir=index_dir).resolved_index_dir
    path = path if is_milvus(path) else os.path.abspath(os.path.expanduser(path))
    keys = load_api_keys(api_keys)
    if llm is not None:
        RunContext(llm=llm)  # validate before serving
    holder = IndexHolder(path)
    try:
        if http:
            import uvicorn

            if not keys and host not in LOCAL_HOSTS:
                log.warning("serving MCP on %s without API keys: anyone who can reach it may search", host)
            server = build_server(holder, llm=llm, host=host, port=port, log_level=log_level)
            uvicorn.run(http_app(server, keys), host=host, port=port, log_level=log_level)
        else:
            ident = stdio_identity(keys, api_key)
            server = build_server(holder, identity=ident, llm=llm, log_level=log_level)
            server.run("stdio")
    finally:
        tracing.flush()
        holder.close()
