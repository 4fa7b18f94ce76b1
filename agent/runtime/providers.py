"""Cached factories for everything external: index, embedder, chat model, reranker.

Each capability sits behind a small Protocol; vendor SDKs are imported inside the branch that needs them,
so the offline defaults work with no keys and every service can be swapped by a string. Tests (and
embedding applications) pass ready-made objects for one run or graph as `Providers`, bound with `using()`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel
from ragroute.context import check_llm_provider
from ragroute.runtime import embedding_cache
from ragroute.tools import rerankers as rr
from ragroute.tools.cache import embedding_key
from ragroute.tools.embeddings import get_embedder
from ragroute.tools.errors import ConfigError, ProviderError
from ragroute.tools.index import sentences
from ragroute.tools.index.config import is_milvus
from ragroute.tools.resilience import RETRYABLE_STATUS, CircuitBreaker
from ragroute.tools.types import AccessScope, SearchHit


@runtime_checkable
class SearchIndex(Protocol):
    """What the graph needs from an index (ragroute.tools.index.HybridIndex satisfies it)."""

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filters: dict | None = None,
        access: AccessScope | None = None,
        weights: dict[str, float] | None = None,
        candidate_k: int | None = None,
    ) -> list[SearchHit]: ...

    def get_parent(self, parent_id: str) -> Any: ...


class Embedder(Protocol):
    """Text -> L2-normalised vectors."""

    def __call__(self, texts: list[str]) -> np.ndarray: ...


class Reranker(Protocol):
    """Reorder hits (dicts) for a query; returns copies carrying `rerank_score`, best first."""

    name: str

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]: ...


@dataclass(frozen=True)
class Providers:
    """Ready-made provider objects for a run or a graph, used instead of building them from strings."""

    index: SearchIndex | None = None
    """The index every retrieval of the run searches (Context.index_dir is then not opened)."""
    chat_model: Any | None = None
    """Any LangChain chat model; Context.llm still switches LLM mode on and names the model for costs."""
    reranker: Reranker | None = None
    """Reorders candidates whenever Context.reranker is not "none"."""


_CURRENT: ContextVar[Providers | None] = ContextVar("ragroute_providers", default=None)


@contextmanager
def using(providers: Providers | None) -> Iterator[None]:
    """Bind `providers` to the code run inside (and the tasks it starts); None keeps the outer binding."""
    if providers is None:
        yield
        return
    token = _CURRENT.set(providers)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> Providers | None:
    """The Providers bound by the innermost `using`, if any."""
    return _CURRENT.get()


_lock = threading.Lock()
_indexes: dict[str, SearchIndex] = {}
# spec -> {running event loop (None outside one): model}: an async client's pooled connections belong
# to the loop that opened them and fail with "Event loop is closed" once it ends
_chat_models: dict[str, dict[asyncio.AbstractEventLoop | None, Any]] = {}
_rerankers: dict[str, Reranker] = {}
_breakers: dict[str, Any] = {}
BREAKER_FAILURES = 3  # consecutive transient failures that open a provider's circuit
BREAKER_RESET_S = 30.0  # how long an open circuit fails fast before one trial call

# USD per 1M tokens (input, output); unknown or local models cost 0.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "claude-3-5-haiku-latest": (0.80, 4.00),
    "claude-sonnet-4-0": (3.00, 15.00),
}


def index(ctx: Any) -> SearchIndex:
    """The bound index, else the (cached) index for ctx.index_dir, opened read-write with the run's rrf_k."""
    bound = _CURRENT.get()
    if bound is not None and bound.index is not None:
        return bound.index
    path = ctx.resolved_index_dir
    with _lock:
        found = _indexes.get(path)
    if found is not None:
        return found
    from ragroute.tools.index import HybridIndex  # imported lazily: opening Chroma is not free

    if not is_milvus(path) and not os.path.isdir(path):  # a Milvus index lives on its server
        raise ConfigError(f"index_dir={path!r} does not exist; ingest documents first (ragroute ingest PATH)")
    # query vectors go to the process's one embedding cache, beside the sentence vectors
    opened = HybridIndex.open(path, rrf_k=ctx.rrf_k, query_cache=embedding_cache.level())
    with _lock:
        return _indexes.setdefault(path, opened)


def embedder() -> Embedder:
    """The offline MiniLM sentence embedder (normalised vectors, served from the process's vector cache)."""

    def embed(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        cache = embedding_cache.level()  # the RagCache's LRU level, shared by rerank/generate/verify
        unique = list(dict.fromkeys(texts))
        keys = {t: embedding_key(sentences.SENTENCE_MODEL, t) for t in unique}
        found = {t: v for t in unique if (v := cache.get(keys[t])) is not None}
        missing = [t for t in unique if t not in found]
        if missing:  # sentences stored at ingest by an open index (tools/index/sentences.py)
            for t, vec in sentences.lookup(sentences.SENTENCE_MODEL, missing).items():
                found[t] = vec
                cache.put(keys[t], vec)
            missing = [t for t in missing if t not in found]
        if missing:  # the index's MiniLM, one model per process
            model = get_embedder(sentences.SENTENCE_MODEL)
            vecs = np.asarray(model.embed_documents(missing), dtype=np.float32)
            for t, vec in zip(missing, vecs, strict=True):
                found[t] = vec
                cache.put(keys[t], vec)
        return np.stack([found[t] for t in texts])

    return embed


def chat_model(spec: str) -> Any:
    """The bound chat model, else a LangChain chat model for "provider:model" via init_chat_model (cached).

    For "openai:..." the env OPENAI_BASE_URL points at any OpenAI-compatible server (llama.cpp, vLLM,
    Ollama); a dummy key is used when none is set, since local servers ignore it.
    """
    bound = _CURRENT.get()
    if bound is not None and bound.chat_model is not None:
        return bound.chat_model
    loop = _running_loop()
    with _lock:
        per_loop = _chat_models.setdefault(spec, {})
        for ended in [lp for lp in per_loop if lp is not None and lp.is_closed()]:
            del per_loop[ended]
        if loop in per_loop:
            return per_loop[loop]
    check_llm_provider(spec)
    provider, _, model_name = spec.partition(":")
    kwargs: dict[str, Any] = {}
    if provider == "openai" and os.environ.get("OPENAI_BASE_URL"):
        kwargs["base_url"] = os.environ["OPENAI_BASE_URL"]
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY", "not-needed")
    try:
        from langchain.chat_models import init_chat_model

        if provider == "openai" and not os.environ.get("OPENAI_PROXY"):
            import openai

            # langchain_openai shares one async httpx client per base URL across all models and loops
            kwargs["http_async_client"] = openai.DefaultAsyncHttpxClient()
        model = init_chat_model(model_name, model_provider=provider, temperature=0, **kwargs)
    except ImportError as exc:
        raise ProviderError(spec, f"missing package for provider {provider!r}: {_first_line(exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"llm={spec!r} is not usable: {_first_line(exc)}") from exc
    except Exception as exc:  # the vendor client refused its settings: a missing API key, a bad base URL
        hint = "; set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server" if provider == "openai" else ""
        raise ProviderError(
            spec, f"cannot be set up: {type(exc).__name__}: {_first_line(exc)}{hint}"
        ) from exc
    with _lock:
        return _chat_models.setdefault(spec, {}).setdefault(loop, model)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop, or None outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # called outside any event loop (sync ask, CLI checks)
        return None


class StructuredOutputRefused(ProviderError):
    """The model's server refused the requested response_format; the call is repeated as plain text."""


_PLAIN_ONLY: set[str] = set()  # circuits (breaker names) whose server refused a response_format


def json_output(model: Any, schema: type[BaseModel], name: str) -> Any | None:
    """`model` set to reply with JSON matching `schema`, or None when its provider offers no structured
    output (the caller then parses the reply's text).

    OpenAI's own API gets `json_schema`. An OpenAI-compatible server (a base URL: llama.cpp, vLLM, Ollama)
    gets llama.cpp's `{"type": "json_object", "schema": ...}`: llama-cpp-python's server honours only that
    form (it answers `json_schema` with HTTP 500) and turns it into a grammar, so even a 135M model writes
    schema-valid JSON. Other providers use LangChain's with_structured_output (tool calling). The runnable
    returns an AIMessage (JSON text) or, via with_structured_output, {"raw", "parsed", "parsing_error"}.
    """
    if name in _PLAIN_ONLY:
        return None
    if _is_chat_openai(model):
        base = str(model.openai_api_base or "")
        if base and "api.openai.com" not in base:
            return model.bind(response_format={"type": "json_object", "schema": schema.model_json_schema()})
        return model.with_structured_output(schema, method="json_schema", include_raw=True)
    try:
        return model.with_structured_output(schema, include_raw=True)
    except (NotImplementedError, AttributeError, TypeError, ValueError):  # no tool calling / no such method
        return None


def _is_chat_openai(model: Any) -> bool:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:  # no OpenAI package: no OpenAI model either
        return False
    return isinstance(model, ChatOpenAI)


def refuses_format(exc: BaseException) -> bool:
    """Whether a failed call was the server refusing the response_format (not a model or network fault)."""
    return "response_format" in str(exc)


def plain_only(name: str) -> None:
    """Remember that the circuit `name`'s server refused structured output: later calls send plain text."""
    with _lock:
        _PLAIN_ONLY.add(name)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def cost_usd(spec: str | None, prompt_tokens: int, completion_tokens: int) -> float:
    """Estimated cost of one call from the price table (0 for local/unknown models)."""
    if not spec:
        return 0.0
    price = PRICES_PER_MTOK.get(spec.partition(":")[2])
    if price is None:
        return 0.0
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


def resolve_reranker_name(name: str) -> str:
    """ "auto" -> "cohere" with COHERE_API_KEY, else "local"; "local" -> a reranker bound through
    Providers (it stays "local"), else the measured offline default (rerankers.OFFLINE_DEFAULT)."""
    if name == "auto":
        name = "cohere" if os.environ.get("COHERE_API_KEY") else "local"
    if name == "local":
        bound = _CURRENT.get()
        # an offline default of "none" must not switch off a reranker the caller passed in
        name = "local" if bound is not None and bound.reranker is not None else rr.OFFLINE_DEFAULT
    return name


def reranker(name: str) -> Reranker:
    """The bound reranker (unless `name` is "none"), else the reranker called `name`
    (see resolve_reranker_name), cached."""
    name = resolve_reranker_name(name)
    bound = _CURRENT.get()
    if bound is not None and bound.reranker is not None and name != "none":
        return bound.reranker
    with _lock:
        if name in _rerankers:
            return _rerankers[name]
    built: Reranker
    if name == "none":
        built = rr.NoReranker()
    elif name == "maxsim":
        built = rr.MaxSimReranker(embedder())
    elif name == "ltr":
        built = rr.LtrReranker(embedder())
    elif name == "cohere":
        key = os.environ.get("COHERE_API_KEY")
        if not key:
            raise ConfigError("reranker='cohere' needs COHERE_API_KEY in the environment; or use 'local'")
        # CO_API_URL is read here, not at cohere import time, so it can point at a proxy or a test server
        built = rr.CohereReranker(api_key=key, base_url=os.environ.get("CO_API_URL") or None)
    elif name.startswith("cross-encoder:"):
        built = rr.CrossEncoderReranker(name.partition(":")[2])
    else:
        raise ConfigError(
            f"reranker={name!r} is unknown; options: auto, none, local, maxsim, ltr, cohere, "
            "cross-encoder:/path"
        )
    with _lock:
        return _rerankers.setdefault(name, built)


# --------------------------------------------------------------------------- fault handling


class TransientProviderError(ProviderError):
    """A provider failure that says nothing about the request: timeout, lost connection, HTTP 429/5xx."""


def is_transient_failure(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it was raised from) is a timeout, a connection failure or a
    retryable HTTP status; SDKs wrap these in their own types, so names and `status_code` are checked."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, StructuredOutputRefused):
            return False
        if isinstance(seen, TransientProviderError | TimeoutError | ConnectionError):
            return True
        status = getattr(seen, "status_code", None) or getattr(
            getattr(seen, "response", None), "status_code", None
        )
        if isinstance(status, int):
            return status in RETRYABLE_STATUS
        name = type(seen).__name__
        if "Timeout" in name or "Connect" in name:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def breaker_name(kind: str, spec: str, provider: Any) -> str:
    """The circuit of `provider` used as `spec`: "<kind>:<spec>" ("llm:...", "rerank:..."); a bound object
    gets a circuit of its own, dropped with it, so its failures never open the one of the provider the
    name builds (nor the reverse)."""
    name = f"{kind}:{spec}"
    bound = _CURRENT.get()
    if bound is None or not any(provider is p for p in (bound.chat_model, bound.reranker)):
        return name
    name = f"{name}@{id(provider):x}"
    with _lock:
        if name not in _breakers:
            try:
                weakref.finalize(provider, _breakers.pop, name, None)
            except TypeError:  # an object without weak references keeps its circuit for the process
                pass
    return name


def breaker(name: str) -> Any:
    """The circuit breaker of one provider ("llm:<spec>", "rerank:<name>"), shared by every run in the
    process: BREAKER_FAILURES transient failures in a row make calls fail fast for BREAKER_RESET_S."""
    with _lock:
        found = _breakers.get(name)
        if found is None:
            found = _breakers[name] = CircuitBreaker(
                name,
                failure_threshold=BREAKER_FAILURES,
                reset_timeout_s=BREAKER_RESET_S,
                failure_on=(TransientProviderError,),
            )
        return found


def reset_breakers() -> None:
    """Close every circuit (tests, or an operator after fixing a provider)."""
    with _lock:
        _breakers.clear()
        _PLAIN_ONLY.clear()


async def guarded(name: str, call: Any) -> Any:
    """Await `call()` through the provider's circuit breaker. A transient failure is re-raised as
    TransientProviderError (and counts); an open circuit raises CircuitOpenError without calling."""

    async def attempt() -> Any:
        try:
            return await call()
        except Exception as exc:
            if refuses_format(exc) and not isinstance(exc, ProviderError):
                # the server refused the request's form (llama-cpp-python says so with a 500): no outage
                raise StructuredOutputRefused(name, _first_line(exc)) from exc
            if is_transient_failure(exc) and not isinstance(exc, TransientProviderError):
                detail = str(exc).splitlines()[0][:200] if str(exc) else "timed out"
                raise TransientProviderError(name, f"{type(exc).__name__}: {detail}") from exc
            raise

    return await breaker(name).acall(attempt)
