"""The FastAPI app: langserve /ask routes for the query graph, wired to the guard, policy and write routes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from langserve import add_routes
from ragroute.context import Context
from ragroute.runtime import tracing as tracing_mod  # `tracing` is create_app's on/off flag
from ragroute.server.answers import SESSION_HEADER, Serializer, answer_runnable, run_config
from ragroute.server.apidocs import add_api_pages
from ragroute.server.auth import ANONYMOUS, Identity, load_api_keys
from ragroute.server.documents import add_document_routes
from ragroute.server.feedback import add_feedback_routes
from ragroute.server.guard import PUBLIC_PATHS, GuardMiddleware, identity_of
from ragroute.server.health import add_health_routes
from ragroute.server.metrics import add_metrics
from ragroute.server.openai_compat import add_openai_routes
from ragroute.server.policy import check_question_input, check_request_configurable
from ragroute.server.state import (
    DEFAULT_MAX_BATCH_INPUTS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUESTION_CHARS,
    DEFAULT_MAX_UPLOAD_BYTES,
    IndexHolder,
    ServerSettings,
)
from ragroute.server.threads import add_thread_routes
from ragroute.tools.errors import ConfigError, InputError, ProviderError, RagrouteError, printable
from ragroute.tools.index.milvus_location import is_milvus
from ragroute.tools.location import default_location
from starlette.exceptions import HTTPException as StarletteHTTPException


def _add_error_handlers(app: FastAPI) -> None:
    """Project errors become JSON `detail` responses: 422 for user mistakes, 502 for providers, 400 else."""

    @app.exception_handler(InputError)
    @app.exception_handler(ConfigError)
    async def _user_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": printable(str(exc))}, status_code=422)

    @app.exception_handler(ProviderError)
    async def _provider_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": printable(str(exc))}, status_code=502)

    @app.exception_handler(RagrouteError)
    async def _other_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": printable(str(exc))}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.detail, str):  # a detail naming the caller's input may hold a lone surrogate
            exc.detail = printable(exc.detail)
        return await http_exception_handler(request, exc)

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
        return JSONResponse({"detail": printable("; ".join(parts) or "invalid request")}, status_code=422)


class BatchTooLarge(InputError):
    """A batch with more inputs than the server allows (HTTP 413)."""


def _check_ask_body(body: Any, batch: bool, settings: ServerSettings) -> None:
    """Reject a bad /ask body with InputError; a batch must be a list of at most `max_batch_inputs` inputs.

    One bad input rejects the whole batch, naming it (`inputs[3].question ...`): langserve's batch has no
    per-item errors, and a client resends the fixed batch rather than matching partial results."""
    if not isinstance(body, dict):
        raise InputError("body must be a JSON object")
    check_request_configurable(body.get("config"))  # an unknown key: 422, not silently dropped
    if not batch:
        check_question_input(body.get("input"), settings.max_question_chars)
        return
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise InputError('inputs must be a list of objects like {"question": "..."}')
    if len(inputs) > settings.max_batch_inputs:
        raise BatchTooLarge(f"batch has {len(inputs)} inputs; the limit is {settings.max_batch_inputs}")
    for i, item in enumerate(inputs):
        check_question_input(item, settings.max_question_chars, f"inputs[{i}]")


def _add_ask_routes(app: FastAPI, answers: Any, holder: IndexHolder, settings: ServerSettings) -> None:
    """langserve routes for `answers` (answer_runnable) under /ask, each run configured by `run_config`."""

    async def per_request(config: dict[str, Any], request: Request) -> dict[str, Any]:
        try:
            # starlette caches the body langserve parsed already; the guard made sure it is UTF-8 and shallow
            _check_ask_body(await request.json(), request.url.path.endswith("/batch"), settings)
            out = run_config(config, identity_of(request), settings, request.headers.get(SESSION_HEADER))
        except BatchTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except (RagrouteError, ValueError, TypeError) as exc:  # Context checks some values with float()
            raise HTTPException(422, str(exc)) from None
        await asyncio.to_thread(holder.get)  # opened off the event loop before the graph searches it
        return out

    add_routes(
        app,
        answers,
        path="/ask",
        config_keys=("configurable",),
        per_req_config_modifier=per_request,
        enable_feedback_endpoint=False,
        enable_public_trace_link_endpoint=False,
        serializer=Serializer(),
    )


def create_app(
    index_dir: str | None = None,
    api_keys: Mapping[str, Any] | str | None = None,
    *,
    llm: str | None = None,
    index: Any = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS,
    max_batch_inputs: int = DEFAULT_MAX_BATCH_INPUTS,
    anonymous: Identity | None = ANONYMOUS,
    tracing: bool = True,
    redact_pii: bool = False,
) -> FastAPI:
    """The FastAPI app: langserve routes for the graph under /ask plus ingest, delete, health and ready.

    `api_keys`: mapping/JSON/path as for `load_api_keys`; None reads the environment. With keys, every
    route but /health and /ready needs a valid X-API-Key; without keys callers run as `anonymous`
    (public documents only). `index`: an already open HybridIndex to serve (tests, embedding apps).
    `max_batch_inputs`: the most inputs one /ask/batch may carry (more: 413)."""
    location = index_dir or default_location()
    # a Milvus location (milvus://HOST:PORT/NAME) is a URL: made a path, it would open an empty local index
    path = location if is_milvus(location) else os.path.abspath(os.path.expanduser(location))
    keys = load_api_keys(api_keys)
    if llm is not None:
        Context(llm=llm)  # validate early
    settings = ServerSettings(
        index_dir=path,
        llm=llm,
        keys=keys,
        max_question_chars=max_question_chars,
        max_batch_inputs=max_batch_inputs,
        tracing=tracing,
        redact_pii=redact_pii,
    )
    holder = IndexHolder(path, index)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if settings.tracing:
            await asyncio.to_thread(tracing_mod.flush)
        holder.close()

    app = FastAPIOffline(  # /docs and /redoc load Swagger UI and ReDoc from the package, not a CDN
        title="ragroute",
        version="0.1.0",
        description="Routed hybrid retrieval with cited, faithfulness-checked answers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.index = holder
    add_api_pages(app, keys, PUBLIC_PATHS)
    _add_error_handlers(app)
    answers = answer_runnable(holder)  # one graph and response cache for /ask and /v1
    _add_ask_routes(app, answers, holder, settings)
    add_openai_routes(app, answers, holder, settings)
    add_thread_routes(app, holder, settings)
    add_health_routes(app, holder)
    add_document_routes(app, holder, settings)
    add_feedback_routes(app, holder)
    app.add_middleware(
        GuardMiddleware,
        keys=keys,
        anonymous=anonymous,
        max_body_bytes=max_body_bytes,
        max_upload_bytes=max_upload_bytes,
    )
    app.state.metrics = add_metrics(app, keys)  # outermost: counts what the guard refuses too
    return app
