"""The query path's caches, wired in: embeddings (LRU), retrieval hits and whole answers (TTL).

One process-wide `ragroute.tools.cache.RagCache` holds the three levels (its embedding level is served to
`providers.embedder()` through `ragroute.runtime.embedding_cache`). Keys hold everything that changes a
result: the query, k, filters, the caller's access scope (groups and clearance), the run's settings,
which index (its location: a Milvus URL every replica shares, else its folder; and its uid) and that
index's *persisted* version, read fresh from the backend on every lookup (SQLite, or Milvus, where other
replicas write too). An ingest, update or delete (soft or hard), through this process or any other, bumps
the version, so entries made before it are never served after it, and two callers with different scopes
never share an entry.

Per-run hit counts live in a ContextVar that `answer()` opens; the nodes' parallel branches share its
dict, so `ask()` can report {"response": "hit"|"miss"|"off", "retrieval_hits": n, "retrieval_misses": n}.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from ragroute.runtime import answer_ids, embedding_cache, feedback, providers
from ragroute.runtime.scope import access_of
from ragroute.tools.cache import RagCache, cache_key
from ragroute.tools.types import AccessScope

_MISSING = object()
RESPONSE_TTL_S = 24 * 3600.0  # the level's ceiling; answers expire per run by ctx.cache_ttl_s
_RUN: ContextVar[dict[str, Any] | None] = ContextVar("ragroute_cache_run", default=None)
# settings that never change an answer (tracing ids, the cache switches themselves)
_NOT_IN_KEY = frozenset({"extra", "cache", "cache_ttl_s"})


def _fresh() -> RagCache:
    return RagCache(embedding_entries=embedding_cache.EMBEDDING_ENTRIES, response_ttl_s=RESPONSE_TTL_S)


_cache = _fresh()
embedding_cache.use(_cache.embeddings)


def rag_cache() -> RagCache:
    """The process-wide cache levels (embeddings, retrieval, responses)."""
    return _cache


def set_cache(cache: RagCache | None = None) -> RagCache:
    """Replace the process-wide cache (tests inject a timer; None: a fresh default one)."""
    global _cache
    _cache = cache if cache is not None else _fresh()
    embedding_cache.use(_cache.embeddings)  # providers.embedder() serves from this cache's level now
    return _cache


def stats() -> dict[str, Any]:
    """Hits, misses and hit rate of every level in this process."""
    return _cache.stats()


def index_identity(index: Any) -> str | None:
    """Which index at which version: location + uid (a rebuilt index starts cold) + version."""
    version = index_version(index)
    if version is None:
        return None
    uid = getattr(index, "uid", None)
    # a Milvus index's `path` is only this machine's folder for its side files; `location` names the index
    where = getattr(index, "location", None) or getattr(index, "path", type(index).__name__)
    return f"{where}|{uid or id(index)}|v{version}"


def index_version(index: Any) -> int | None:
    """The index's current version (HybridIndex reads it from SQLite or Milvus, so other writers and
    replicas count); None when the index has none, and then nothing about it is cached."""
    try:
        version = index.version
    except Exception:  # a closed index or a fake without versions: do not cache
        return None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _count(name: str) -> None:
    run = _RUN.get()
    if run is not None:
        run[name] = run.get(name, 0) + 1


def search(
    index: Any,
    query: str,
    k: int,
    *,
    filters: dict[str, Any] | None,
    access: AccessScope | None,
    weights: dict[str, float] | None,
    candidate_k: int,
    enabled: bool = True,
) -> list[Any]:
    """`index.search` through the retrieval cache.

    The top max(k, candidate_k) hits are computed and cached once; a smaller k is served as their prefix
    (fusion is deterministic with ties broken by chunk id, so the prefix is exactly what a smaller search
    returns). That lets classify's probe and the retrieve node share one search of the same question.
    """
    ident = index_identity(index) if enabled else None
    if ident is None:
        return list(
            index.search(query, k, filters=filters, access=access, weights=weights, candidate_k=candidate_k)
        )
    want = max(k, candidate_k)
    key = cache_key(
        level="retrieval",
        index=ident,
        query=query,
        k=want,
        filters=filters,
        access=access,
        weights=weights,
        candidate_k=candidate_k,
    )
    found = _cache.retrieval.get(key, _MISSING)
    if found is not _MISSING:
        _count("retrieval_hits")
        return copy.deepcopy(found[:k])
    _count("retrieval_misses")
    hits = list(
        index.search(query, want, filters=filters, access=access, weights=weights, candidate_k=candidate_k)
    )
    # deep copies in and out: a caller mutating its hits cannot change what the next caller gets
    _cache.retrieval.put(key, copy.deepcopy(hits))
    return hits[:k]


def response_key(inputs: dict[str, Any], ctx: Any) -> str | None:
    """Key of one whole answer, or None when it must not be cached (caching off, index without version);
    call it inside the run's `providers.using`, so the key names the objects the run will use."""
    if not getattr(ctx, "cache", True):
        return None
    try:
        index = providers.index(ctx)
    except Exception:  # the run itself reports a missing index with a clear error
        return None
    ident = index_identity(index)
    if ident is None:
        return None
    settings = {k: v for k, v in dataclasses.asdict(ctx).items() if k not in _NOT_IN_KEY}
    return cache_key(
        level="responses",
        index=ident,
        question=inputs.get("question"),
        filters=inputs.get("filters"),
        access=access_of(ctx),
        settings=settings,
        # a bound model or reranker (providers.using) is another provider than the one the name builds
        providers=_provider_ids(ctx),
        # freshness decay and staleness notes depend on today's date
        today=dt.date.today().isoformat(),
    )


def _provider_ids(ctx: Any) -> list[int]:
    ids = []
    for build, spec in ((providers.chat_model, ctx.llm), (providers.reranker, ctx.reranker)):
        try:
            ids.append(id(build(spec)) if spec else 0)
        except Exception:  # an unusable provider fails (or degrades) in the run itself
            ids.append(-1)
    return ids


async def answer(
    inputs: dict[str, Any], ctx: Any, run: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """`await run(inputs)` through the response cache, adding the run's `cache` report to the result.

    Degraded answers (a provider failed) are never stored: the next call should try the provider again.
    Entries expire after `ctx.cache_ttl_s` seconds.
    """
    started = time.perf_counter()
    key = response_key(inputs, ctx)
    ttl = float(getattr(ctx, "cache_ttl_s", 600.0))
    clock = _cache.responses.timer
    if key is not None:
        found = _cache.responses.get(key, _MISSING)
        if found is not _MISSING and clock() - found[0] < ttl:
            out = copy.deepcopy(found[1])
            out["timings"] = {"total": round((time.perf_counter() - started) * 1000, 3)}
            out["cache"] = {"response": "hit", "retrieval_hits": 0, "retrieval_misses": 0}
            # each delivery is its own answer to rate; its trace is the run that made the cached one
            first, out["answer_id"] = out.get("answer_id"), answer_ids.new_id()
            question = str(inputs.get("question") or "")
            record = feedback.answer_record(ctx, out["answer_id"], question, out)
            await feedback.record(ctx, record, trace_of=first)
            return out
    run_stats: dict[str, Any] = {"retrieval_hits": 0, "retrieval_misses": 0}
    token = _RUN.set(run_stats)
    try:
        with answer_ids.delivering():
            out = await run(inputs)
    finally:
        _RUN.reset(token)
    if key is not None and not out.get("degradations"):
        _cache.responses.put(key, (clock(), copy.deepcopy(out)))
    out["cache"] = {"response": "miss" if key is not None else "off", **run_stats}
    return out


def run_stats() -> dict[str, Any] | None:
    """This run's retrieval hit/miss counts (None outside `answer`)."""
    run = _RUN.get()
    return dict(run) if run is not None else None
