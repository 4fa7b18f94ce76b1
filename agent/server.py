"""ragroute over HTTP: langserve routes for the query graph plus /ingest, /documents/{id}, /health, /ready.

`create_app()` builds the FastAPI app; `ragroute serve` runs it with uvicorn. Callers authenticate with an
`X-API-Key` header when keys are configured; each key maps to an identity whose groups and clearance are
forced into every run's `configurable`, so a request body can narrow but never widen what a caller sees.
Without keys the server is open and anonymous callers see public documents only.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragroute.context import RERANKERS, Context
from ragroute.tools.errors import ConfigError, InputError, ProviderError, RagrouteError
from ragroute.tools.types import AccessScope, Document

try:  # route signatures are resolved from module globals (postponed annotations), so import it here
    from fastapi import Request
except ImportError:  # pragma: no cover - the `serve` extra is not installed
    Request = Any  # type: ignore[misc,assignment]

log = logging.getLogger("ragroute.server")

API_KEY_HEADER = "x-api-key"
SESSION_HEADER = "x-session-id"
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MAX_UPLOAD_BYTES = 20_000_000
DEFAULT_MAX_QUESTION_CHARS = 2_000
PUBLIC_PATHS = ("/health", "/ready")

# Context fields a client may set through `configurable`; everything else is decided by the server.
SERVER_KEYS = (
    "index_dir",
    "llm",
    "user_groups",
    "clearance",
    "strict",
    "llm_timeout_s",
    "reranker_timeout_s",
    "extra",
)
# Upper bounds on client-chosen knobs, so one request cannot ask for unbounded work.
CLIENT_LIMITS = {
    "k_simple": 50,
    "k_expand": 100,
    "k_multihop": 100,
    "candidate_k": 200,
    "token_budget": 16_000,
    "max_retries": 3,
    "max_subquestions": 8,
    "num_variants": 8,
}


@dataclass(frozen=True)
class Identity:
    """Who a request runs as: the ACL groups and clearance enforced on every retrieval."""

    user: str
    groups: tuple[str, ...] = ()
    clearance: int = 0
    write: bool = False  # may POST /ingest and DELETE /documents/{id}
    unrestricted: bool = False  # sees every document (trusted service keys)

    def scope(self) -> AccessScope | None:
        """The caller's AccessScope for index calls (None: unrestricted)."""
        return None if self.unrestricted else AccessScope(groups=list(self.groups), clearance=self.clearance)

    def configurable(self) -> dict[str, Any]:
        """The access fields forced into the run's configurable."""
        if self.unrestricted:
            return {"user_groups": None, "clearance": None}
        return {"user_groups": list(self.groups), "clearance": self.clearance}


ANONYMOUS = Identity(user="anonymous", write=True)


def _identity(key_hint: str, spec: Any) -> Identity:
    where = f"API key {key_hint}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f'{where}: expected an object like {{"user": ..., "groups": [...]}}, got {spec!r}')
    unknown = set(spec) - {"user", "groups", "clearance", "write", "unrestricted"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}"
            "; options: user, groups, clearance, write, unrestricted"
        )
    groups = spec.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ConfigError(f"{where}: groups={groups!r} must be a list of group names")
    clearance = spec.get("clearance", 0)
    if isinstance(clearance, bool) or not isinstance(clearance, int):
        raise ConfigError(f"{where}: clearance={clearance!r} must be an integer")
    for flag in ("write", "unrestricted"):
        if not isinstance(spec.get(flag, False), bool):
            raise ConfigError(f"{where}: {flag}={spec.get(flag)!r} must be true or false")
    return Identity(
        user=str(spec.get("user") or key_hint),
        groups=tuple(groups),
        clearance=clearance,
        write=bool(spec.get("write", False)),
        unrestricted=bool(spec.get("unrestricted", False)),
    )


def load_api_keys(source: Mapping[str, Any] | str | None = None) -> dict[str, Identity]:
    """API keys -> identities from a mapping, a JSON string, a JSON file path, or (None) the environment.

    The environment is RAGROUTE_API_KEYS (JSON) or RAGROUTE_API_KEYS_FILE (path to JSON). The JSON maps
    each key to {"user": "alice", "groups": ["ops"], "clearance": 2, "write": false}."""
    if source is None:
        if os.environ.get("RAGROUTE_API_KEYS"):
            source = os.environ["RAGROUTE_API_KEYS"]
        elif os.environ.get("RAGROUTE_API_KEYS_FILE"):
            source = os.environ["RAGROUTE_API_KEYS_FILE"]
        else:
            return {}
    if isinstance(source, str):
        text = source
        if not source.lstrip().startswith("{"):
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read API key file {source!r}: {exc.strerror or exc}") from None
        try:
            source = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"API keys are not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(source, Mapping):
        raise ConfigError("API keys must be a JSON object mapping key -> {user, groups, clearance}")
    keys: dict[str, Identity] = {}
    for key, spec in source.items():
        if not isinstance(key, str) or len(key) < 8:
            raise ConfigError(f"API key {str(key)[:4]!r}...: keys must be strings of at least 8 characters")
        keys[key] = _identity(f"{key[:4]}...", spec)
    return keys


# --------------------------------------------------------------------------- ASGI middleware


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
            ident = self._lookup(headers.get(API_KEY_HEADER))
            if ident is None:
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


# --------------------------------------------------------------------------- app state


@dataclass
class ServerSettings:
    """What `create_app` was configured with (the parts request handlers need)."""

    index_dir: str
    llm: str | None = None
    keys: dict[str, Identity] = field(default_factory=dict)
    max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS
    tracing: bool = True
    redact_pii: bool = False  # force Context.redact_query_pii on every run and redact ingested documents


class IndexHolder:
    """Opens the index once (lazily, thread-safe) and registers it for the graph's runs."""

    def __init__(self, index_dir: str, index: Any = None) -> None:
        self.index_dir = index_dir
        self._index = index
        self._owned = index is None
        self._lock = threading.Lock()
        if index is not None:
            self._register(index)

    def _register(self, index: Any) -> None:
        from ragroute.runtime import providers

        providers.register_index(self.index_dir, index)

    def get(self) -> Any:
        """The open index (opened and registered on first use)."""
        with self._lock:
            if self._index is None:
                from ragroute.tools.index import HybridIndex

                self._index = HybridIndex.open(self.index_dir)
                self._register(self._index)
            return self._index

    def close(self) -> None:
        """Close the index if this holder opened it."""
        from ragroute.runtime import providers

        with self._lock:
            if self._index is not None and self._owned:
                providers.forget_index(self.index_dir)
                self._index.close()
                self._index = None


def _check_client_configurable(values: dict[str, Any]) -> None:
    for name, limit in CLIENT_LIMITS.items():
        value = values.get(name)
        if isinstance(value, int) and value > limit:
            raise InputError(f"{name}={value} is above this server's limit of {limit}")
    reranker = values.get("reranker")
    if reranker is not None and reranker not in RERANKERS:
        raise InputError(f"reranker={reranker!r} is not allowed here; options: {list(RERANKERS)}")
    flt = values.get("filters")
    if flt is not None:
        _check_filter(flt, "configurable.filters")


def _check_filter(flt: Any, where: str) -> None:
    from ragroute.tools.filters import parse_filter

    if not isinstance(flt, dict):
        raise InputError(f"{where} must be a JSON object, got {type(flt).__name__}")
    try:
        parse_filter(flt)
    except RagrouteError as exc:
        raise InputError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None


def server_configurable(
    client: Mapping[str, Any] | None, identity: Identity, settings: ServerSettings
) -> dict[str, Any]:
    """The configurable a run actually gets: the client's allowed knobs, then the server's forced fields."""
    values = {k: v for k, v in dict(client or {}).items() if k in Context.field_names()}
    defaults = Context()
    # langserve fills every Context field; only non-default values count as the client's choices
    chosen = {k: v for k, v in values.items() if k not in SERVER_KEYS and v != getattr(defaults, k)}
    _check_client_configurable(chosen)
    merged = {
        **chosen,
        "index_dir": settings.index_dir,
        "llm": settings.llm,
        **identity.configurable(),
        **({"redact_query_pii": True} if settings.redact_pii else {}),
    }
    Context.from_dict(merged)  # the full combination must validate (k bounds etc.)
    return merged


def check_question_input(value: Any, max_chars: int, where: str = "input") -> None:
    """Reject a bad graph input with InputError: question must be a non-blank string of bounded length."""
    if not isinstance(value, dict):
        raise InputError(f'{where} must be an object like {{"question": "..."}}')
    unknown = set(value) - {"question", "filters"}
    if unknown:
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)}; options: ['question', 'filters']")
    question = value.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}.question must be a non-empty string")
    if len(question) > max_chars:
        raise InputError(f"{where}.question is {len(question)} characters; the limit is {max_chars}")
    if value.get("filters") is not None:
        _check_filter(value["filters"], f"{where}.filters")


# --------------------------------------------------------------------------- ingestion helpers

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def documents_from_json(items: Any) -> list[Any]:
    """Validate JSON document objects into `ragroute.tools.types.Document`s (InputError naming the bad item)."""
    from ragroute.tools.types import Document

    if not isinstance(items, list) or not items:
        raise InputError("documents must be a non-empty list of {doc_id, text, title?, metadata?, format?}")
    docs = []
    for i, item in enumerate(items):
        where = f"documents[{i}]"
        if not isinstance(item, dict):
            raise InputError(f"{where} must be an object, got {type(item).__name__}")
        unknown = set(item) - {"doc_id", "text", "title", "source", "metadata", "format"}
        if unknown:
            raise InputError(f"{where}: unknown field(s) {sorted(unknown)}")
        doc_id, text = item.get("doc_id"), item.get("text")
        if not isinstance(doc_id, str) or not doc_id.strip():
            raise InputError(f"{where}.doc_id must be a non-empty string")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}.text must be a non-empty string")
        fmt = item.get("format", "text")
        if fmt not in ("text", "markdown"):
            raise InputError(f"{where}.format={fmt!r}; options: ['text', 'markdown']")
        meta = item.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InputError(f"{where}.metadata must be an object")
        docs.append(
            Document(
                doc_id=doc_id.strip(),
                text=text,
                title=str(item.get("title") or ""),
                source=str(item.get("source") or f"api:{doc_id.strip()}"),
                metadata=dict(meta),
                format=fmt,
            )
        )
    return docs


def documents_from_uploads(files: list[tuple[str, bytes]]) -> list[Any]:
    """Load uploaded files with the regular loaders (by file suffix); failures come back as LoadFailures."""
    from ragroute.tools.loaders import load_file

    out: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="ragroute-upload-") as tmp:
        for name, data in files:
            safe = _SAFE_NAME.sub("_", Path(name or "upload.txt").name).lstrip(".") or "upload.txt"
            path = Path(tmp) / safe
            path.write_bytes(data)
            for item in load_file(path, doc_id=safe):
                out.append(replace(item, source=f"upload:{safe}"))
    return out


# --------------------------------------------------------------------------- the app


def _json_default(obj: Any) -> Any:
    """JSON for objects langserve's serializer does not know (LangGraph `Send` in stream events)."""
    from pydantic import BaseModel

    if isinstance(obj, BaseModel):
        return obj.model_dump()
    node, arg = getattr(obj, "node", None), getattr(obj, "arg", None)
    if node is not None and type(obj).__name__ == "Send":
        return {"send": node, "arg": arg}
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return repr(obj)


def _serializer() -> Any:
    import orjson
    from langserve.serialization import WellKnownLCSerializer

    class Serializer(WellKnownLCSerializer):
        """langserve's serializer, tolerant of LangGraph control objects in streamed events."""

        def dumps(self, obj: Any) -> bytes:
            return orjson.dumps(obj, default=_json_default)

    return Serializer()


def cached_answers(runnable: Any) -> Any:
    """`runnable` (the graph) with its async invoke going through the response cache (ragroute.runtime.caching): the
    same question, filters, settings and caller scope on the same index version is answered from memory
    within `cache_ttl_s`; the output's `cache.response` says "hit", "miss" or "off". The key holds the
    caller's groups and clearance, so a cached answer never reaches a caller with another scope.
    Streams and batches always run the graph."""
    from langchain_core.runnables.base import RunnableBinding
    from ragroute.context import context_of
    from ragroute.runtime import caching

    class CachedAnswers(RunnableBinding):  # type: ignore[type-arg]
        def config_schema(self, *, include: Any = None) -> Any:
            # the graph's own schema (its Context as `configurable`); langserve parses requests with it
            return self.bound.config_schema(include=include)

        async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:  # noqa: A002
            if not isinstance(input, dict):
                return await RunnableBinding.ainvoke(self, input, config, **kwargs)
            ctx = context_of(self._merge_configs(config))

            async def run(values: dict[str, Any]) -> dict[str, Any]:
                return dict(await RunnableBinding.ainvoke(self, values, config, **kwargs))

            return await caching.answer(dict(input), ctx, run)

    return CachedAnswers(bound=runnable)


def create_app(
    index_dir: str | None = None,
    api_keys: Mapping[str, Any] | str | None = None,
    *,
    llm: str | None = None,
    index: Any = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS,
    anonymous: Identity | None = ANONYMOUS,
    tracing: bool = True,
    redact_pii: bool = False,
) -> Any:
    """The FastAPI app: langserve routes for the graph under /ask plus ingest, delete, health and ready.

    `api_keys`: mapping/JSON/path as for `load_api_keys`; None reads the environment. With keys, every
    route but /health and /ready needs a valid X-API-Key; without keys callers run as `anonymous`
    (public documents only). `index`: an already open HybridIndex to serve (tests, embedding apps)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from langserve import add_routes
    from ragroute.runtime import tracing as tracing_mod
    from ragroute.workflow import graph

    path = os.path.abspath(
        os.path.expanduser(index_dir or os.environ.get("RAGROUTE_INDEX_DIR") or "~/.ragroute/index")
    )
    keys = load_api_keys(api_keys)
    if llm is not None:
        Context(llm=llm)  # validate early
    settings = ServerSettings(
        index_dir=path,
        llm=llm,
        keys=keys,
        max_question_chars=max_question_chars,
        tracing=tracing,
        redact_pii=redact_pii,
    )
    holder = IndexHolder(path, index)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield
        if settings.tracing:
            await asyncio.to_thread(tracing_mod.flush)
        holder.close()

    app = FastAPI(
        title="ragroute",
        version="0.1.0",
        description="Routed hybrid retrieval with cited, faithfulness-checked answers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.index = holder

    @app.exception_handler(InputError)
    @app.exception_handler(ConfigError)
    async def _user_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(ProviderError)
    async def _provider_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=502)

    @app.exception_handler(RagrouteError)
    async def _other_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        parts = []
        for err in errors[:5]:
            if isinstance(err, dict):
                loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
                parts.append(f"{loc}: {err.get('msg', err)}" if loc else str(err.get("msg", err)))
            else:
                parts.append(str(err))
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    def identity_of(request: Request) -> Identity:
        ident = getattr(request.state, "identity", None)
        if ident is None:  # the middleware always sets it on protected paths
            from fastapi import HTTPException

            raise HTTPException(401, "missing X-API-Key header")
        return ident

    async def per_request(config: dict[str, Any], request: Request) -> dict[str, Any]:
        from fastapi import HTTPException

        ident = identity_of(request)
        try:
            body = await request.json()  # starlette caches it; langserve parsed it already
            if isinstance(body, dict) and isinstance(body.get("inputs"), list):
                for i, item in enumerate(body["inputs"]):
                    check_question_input(item, settings.max_question_chars, f"inputs[{i}]")
            elif isinstance(body, dict) and "input" in body:
                check_question_input(body["input"], settings.max_question_chars)
            configurable = server_configurable(config.get("configurable"), ident, settings)
        except RagrouteError as exc:
            raise HTTPException(422, str(exc)) from None
        await asyncio.to_thread(holder.get)  # opened and registered before the graph looks it up
        out: Any = {**config, "configurable": configurable}
        if settings.tracing:
            ctx = Context.from_dict(configurable)
            out = tracing_mod.traced_config(
                out, ctx=ctx, user_id=ident.user, session_id=request.headers.get(SESSION_HEADER)
            )
        return out

    add_routes(
        app,
        cached_answers(graph),
        path="/ask",
        config_keys=("configurable",),
        per_req_config_modifier=per_request,
        enable_feedback_endpoint=False,
        enable_public_trace_link_endpoint=False,
        disabled_endpoints=["stream_log"],
        serializer=_serializer(),
    )

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
            from ragroute.runtime import providers

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
        return JSONResponse({"status": "ready", "index_dir": path, **info})

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        """Index statistics plus this server's cache levels (hits, misses, hit rate, size)."""
        identity_of(request)
        from ragroute.runtime import caching

        index_stats = await asyncio.to_thread(lambda: holder.get().stats())
        return {"index": index_stats, "cache": caching.stats()}

    @app.post("/ingest")
    async def ingest(request: Request) -> JSONResponse:
        """Ingest JSON documents ({"documents": [...], "meta": {...}}) or multipart files (+ meta field)."""
        ident = identity_of(request)
        if not ident.write:
            return JSONResponse({"detail": f"API key of {ident.user!r} may not ingest"}, 403)
        ctype = request.headers.get("content-type", "")
        meta: Any = None
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
            return JSONResponse(
                {"detail": "send application/json {documents: [...]} or multipart/form-data files"}, 415
            )
        if meta is not None and not isinstance(meta, dict):
            raise InputError("meta must be a JSON object of metadata for every document")

        def run() -> dict[str, Any]:
            from ragroute.tools.ingest import ingest_documents

            index = holder.get()
            # never let a key overwrite a document it cannot read (same message whether or not it exists)
            scope = ident.scope()
            denied_ids = {
                id(d) for d in docs if isinstance(d, Document) and not index.can_modify(d.doc_id, scope)
            }
            denied = [d for d in docs if id(d) in denied_ids]
            allowed = [d for d in docs if id(d) not in denied_ids]
            report = ingest_documents(
                index,
                allowed,
                meta=meta,
                progress=False,
                use_sidecar=False,
                redact_pii=settings.redact_pii,
            )
            for doc in denied:
                report.failed.append((doc.doc_id, "this API key may not write this document id"))
            return report.to_dict()

        report = await asyncio.to_thread(run)
        status = 200 if report["counts"]["failed"] == 0 or len(docs) > report["counts"]["failed"] else 422
        return JSONResponse(report, status_code=status)

    @app.delete("/documents/{doc_id:path}")
    async def delete_document(doc_id: str, request: Request, soft: bool = False) -> JSONResponse:
        """Delete one document (all its chunks) by id; ?soft=true keeps it restorable until purged."""
        ident = identity_of(request)
        if not ident.write:
            return JSONResponse({"detail": f"API key of {ident.user!r} may not delete"}, 403)

        def run() -> bool:
            index = holder.get()
            # a document the key cannot read looks exactly like a missing one
            return index.can_modify(doc_id, ident.scope()) and index.delete_document(doc_id, soft=soft)

        deleted = await asyncio.to_thread(run)
        if not deleted:
            return JSONResponse({"detail": f"no document with doc_id {doc_id!r}"}, 404)
        return JSONResponse({"deleted": doc_id, **({"soft": True} if soft else {})})

    app.add_middleware(
        GuardMiddleware,
        keys=keys,
        anonymous=anonymous,
        max_body_bytes=max_body_bytes,
        max_upload_bytes=max_upload_bytes,
    )
    return app


# --------------------------------------------------------------------------- CLI


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API with uvicorn."""
    import uvicorn
    from ragroute.cli import index_dir

    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    app = create_app(
        args.serve_index or index_dir(args), args.api_keys, llm=args.llm, redact_pii=args.redact_pii
    )
    if not app.state.settings.keys and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving on %s without API keys: anyone who can reach it may ingest and delete", args.host
        )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register(subparsers: Any) -> None:
    """Add `ragroute serve` to the CLI (picked up by ragroute.cli.build_parser)."""
    p = subparsers.add_parser(
        "serve",
        help="serve the HTTP API (langserve /ask routes, /ingest, /documents, /health, /ready)",
        description="Serve the HTTP API: /ask/invoke|batch|stream|stream_events|playground, POST /ingest, "
        "DELETE /documents/{id}, GET /health, GET /ready.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--index", dest="serve_index", help="index folder (same as the global --index)")
    p.add_argument(
        "--api-keys",
        help="JSON or a JSON file mapping key -> {user, groups, clearance, write} "
        "(default: $RAGROUTE_API_KEYS or $RAGROUTE_API_KEYS_FILE; none: open, public documents only)",
    )
    p.add_argument("--llm", help="chat model for every run, e.g. openai:gpt-4o-mini (default: offline)")
    p.add_argument(
        "--redact-pii",
        action="store_true",
        help="replace PII in every question (before retrieval, models and traces) and in every "
        "ingested document (mapping kept encrypted when RAGROUTE_PII_KEY is set)",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
