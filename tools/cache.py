"""Multi-level caching: embeddings (LRU), retrieval results and answers (TTL), keyed by everything that
changes a result and invalidated by the index version.

A cache key must include the caller's access scope: two callers with different groups or clearance never
share an entry, so a cached answer cannot leak a document to someone who may not see it. Entries also
carry the index version they were computed against and are never served for another version.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.types import AccessScope

V = TypeVar("V")
_MISSING = object()


# -------------------------------------------------------------------------------------------- cache keys


def _canonical(value: Any, where: str) -> Any:
    """JSON-able form with a single spelling for equal values (sorted keys, sorted sets)."""
    if isinstance(value, AccessScope):
        return scope_part(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"cache key part {where!r} is not a finite number: {value!r}")
        # 1.0 and 1 give the same result anywhere we use numbers (k, weights, budgets)
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"cache key part {where!r} has a non-string key {k!r}")
            out[k] = _canonical(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [_canonical(v, f"{where}{{}}") for v in value]
        return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canonical(dataclasses.asdict(value), where)
    raise InputError(
        f"cache key part {where!r} has unsupported type {type(value).__name__}; "
        "use str, number, bool, None, list, dict, set or a dataclass"
    )


def scope_part(access: AccessScope | None) -> dict[str, Any]:
    """Canonical access scope: groups sorted and de-duplicated; None (unrestricted) differs from []."""
    if access is None:
        return {"groups": None, "clearance": None}
    groups = None if access.groups is None else sorted(set(access.groups))
    return {"groups": groups, "clearance": access.clearance}


def cache_key(**parts: Any) -> str:
    """Stable hash of every input that changes a result (query, filters, access, settings, index version).

    Dict key order, set order and group order do not matter; `access=` accepts an AccessScope (or None for
    an unrestricted caller) and is always part of the key, so forgetting it cannot merge scopes.
    """
    parts.setdefault("access", None)
    canon = {k: _canonical(v, k) for k, v in parts.items()}
    blob = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------------ levels


@dataclass
class _Entry(Generic[V]):
    value: V
    version: int | None
    expires_at: float | None


class _Counters:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0
        self.invalidations = 0


class LRUCache(Generic[V]):
    """Thread-safe cache bounded by entry count; evicts the least recently used entry.

    `ttl_s` (optional) expires entries that old, measured with the injectable monotonic `clock`.
    `version` on put/get tags an entry with the index version; a get for another version misses.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        *,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "cache",
    ) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ConfigError(f"cache {name!r}: max_entries must be an int >= 1, got {max_entries!r}")
        if ttl_s is not None and (not isinstance(ttl_s, int | float) or not ttl_s > 0):
            raise ConfigError(f"cache {name!r}: ttl_s must be a number > 0 or None, got {ttl_s!r}")
        self.name = name
        self.max_entries = max_entries
        self.ttl_s = float(ttl_s) if ttl_s is not None else None
        self._clock = clock
        self._data: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._lock = threading.RLock()
        self._c = _Counters()
        self._min_version: int | None = None

    def get(self, key: str, default: Any = None, *, version: int | None = None) -> V | Any:
        """The cached value, or `default` on a miss (absent, expired or from another index version)."""
        with self._lock:
            entry = self._data.get(key)
            if entry is not None and self._newer(entry, version):
                entry = None  # a reader holding an older index version: miss, but keep the fresh entry
            elif entry is not None and self._stale(entry, version):
                del self._data[key]
                entry = None
            if entry is None:
                self._c.misses += 1
                return default
            self._data.move_to_end(key)
            self._c.hits += 1
            return entry.value

    @staticmethod
    def _newer(entry: _Entry[V], version: int | None) -> bool:
        return entry.version is not None and (version is None or entry.version > version)

    def _stale(self, entry: _Entry[V], version: int | None) -> bool:
        if entry.expires_at is not None and self._clock() >= entry.expires_at:
            self._c.expirations += 1
            return True
        if entry.version != version or (
            self._min_version is not None and (entry.version is None or entry.version < self._min_version)
        ):
            self._c.invalidations += 1
            return True
        return False

    def put(self, key: str, value: V, *, version: int | None = None) -> None:
        """Store `value`; evicts the least recently used entry when full."""
        with self._lock:
            if self._min_version is not None and (version is None or version < self._min_version):
                return  # computed against an index that has since changed: never store it
            expires = self._clock() + self.ttl_s if self.ttl_s is not None else None
            self._data[key] = _Entry(value, version, expires)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
                self._c.evictions += 1

    def get_or_compute(self, key: str, compute: Callable[[], V], *, version: int | None = None) -> V:
        """Cached value, or compute, store and return it (compute runs outside the lock)."""
        value = self.get(key, _MISSING, version=version)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        value = compute()
        self.put(key, value, version=version)
        return value

    def invalidate(self, key: str) -> bool:
        """Drop one entry; True when it existed."""
        with self._lock:
            return self._data.pop(key, None) is not None

    def invalidate_before(self, version: int) -> int:
        """Drop every entry from an index version older than `version` and refuse them from now on."""
        with self._lock:
            self._min_version = version if self._min_version is None else max(self._min_version, version)
            old = [k for k, e in self._data.items() if e.version is None or e.version < self._min_version]
            for k in old:
                del self._data[k]
            self._c.invalidations += len(old)
            return len(old)

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._data)

    def stats(self) -> dict[str, Any]:
        """Hits, misses, hit rate, size and eviction/expiry/invalidation counts."""
        with self._lock:
            c = self._c
            total = c.hits + c.misses
            return {
                "hits": c.hits,
                "misses": c.misses,
                "hit_rate": round(c.hits / total, 4) if total else 0.0,
                "size": len(self._data),
                "max_entries": self.max_entries,
                "ttl_s": self.ttl_s,
                "evictions": c.evictions,
                "expirations": c.expirations,
                "invalidations": c.invalidations,
            }


class TTLCache(LRUCache[V]):
    """An LRU cache whose entries also expire `ttl_s` seconds after they were stored."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 1024,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "cache",
    ) -> None:
        if ttl_s is None:
            raise ConfigError(f"cache {name!r}: TTLCache needs ttl_s > 0")
        super().__init__(max_entries, ttl_s=ttl_s, clock=clock, name=name)


LEVELS = ("embeddings", "retrieval", "responses")


class RagCache:
    """The three cache levels the query path uses, with one index version shared by the last two.

    embeddings: text -> vector, keyed by model and text, independent of the index version.
    retrieval: search hits, keyed by `cache_key(...)`, TTL, tagged with the index version.
    responses: final answers, keyed by `cache_key(...)`, TTL, tagged with the index version.
    """

    def __init__(
        self,
        *,
        embedding_entries: int = 10_000,
        retrieval_entries: int = 2_000,
        retrieval_ttl_s: float = 300.0,
        response_entries: int = 1_000,
        response_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.embeddings: LRUCache[Any] = LRUCache(embedding_entries, clock=clock, name="embeddings")
        self.retrieval: TTLCache[Any] = TTLCache(
            retrieval_ttl_s, retrieval_entries, clock=clock, name="retrieval"
        )
        self.responses: TTLCache[Any] = TTLCache(
            response_ttl_s, response_entries, clock=clock, name="responses"
        )
        self._version: int | None = None
        self._lock = threading.Lock()

    @property
    def index_version(self) -> int | None:
        """The newest index version seen."""
        return self._version

    def set_index_version(self, version: int) -> None:
        """Record the current index version; older retrieval and response entries are dropped."""
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"index version must be an int, got {version!r}")
        with self._lock:
            if self._version is not None and version <= self._version:
                return
            self._version = version
        self.retrieval.invalidate_before(version)
        self.responses.invalidate_before(version)

    @staticmethod
    def embedding_key(model: str, text: str) -> str:
        """Key of one embedding: the model name and the exact text."""
        return cache_key(level="embeddings", model=model, text=text)

    def level(self, name: str) -> LRUCache[Any]:
        """One level by name."""
        if name not in LEVELS:
            raise ConfigError(f"unknown cache level {name!r}; options: {', '.join(LEVELS)}")
        return getattr(self, name)  # type: ignore[no-any-return]

    def clear(self) -> None:
        """Empty every level."""
        for name in LEVELS:
            self.level(name).clear()

    def stats(self) -> dict[str, Any]:
        """Per-level stats plus the index version."""
        out: dict[str, Any] = {name: self.level(name).stats() for name in LEVELS}
        out["index_version"] = self._version
        return out


# ---------------------------------------------------------------------------------------- ready wrappers


class CachedEmbedder:
    """An embedder wrapper serving repeated texts from an LRU cache; only the misses reach the model.

    It reports the wrapped embedder's `name`, so an index records the same model either way. Query and
    document embeddings are cached apart (some models embed them differently).
    """

    def __init__(
        self, embedder: Any, cache: LRUCache[Any] | None = None, *, max_entries: int = 10_000
    ) -> None:
        for meth in ("embed_documents", "embed_query"):
            if not callable(getattr(embedder, meth, None)):
                raise ConfigError(
                    f"CachedEmbedder needs an embedder with {meth}(), got {type(embedder).__name__}"
                )
        self.inner = embedder
        self.name = str(getattr(embedder, "name", type(embedder).__name__))
        self.cache: LRUCache[Any] = cache if cache is not None else LRUCache(max_entries, name="embeddings")

    def _key(self, kind: str, text: str) -> str:
        return cache_key(level="embeddings", model=self.name, kind=kind, text=text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a batch, computing only the texts not cached (in one call to the wrapped model)."""
        keys = [self._key("document", t) for t in texts]
        out: list[Any] = [self.cache.get(k, _MISSING) for k in keys]
        todo = list(dict.fromkeys(t for t, v in zip(texts, out, strict=True) if v is _MISSING))
        if todo:
            fresh = dict(zip(todo, self.inner.embed_documents(todo), strict=True))
            for i, t in enumerate(texts):
                if out[i] is _MISSING:
                    out[i] = fresh[t]
                    self.cache.put(keys[i], fresh[t])
        return [list(v) for v in out]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, from the cache when seen before."""
        return list(self.cache.get_or_compute(self._key("query", text), lambda: self.inner.embed_query(text)))


_SEARCH_ARGS = {"filters", "access", "weights", "candidate_k"}


def _prepare(
    fname: str,
    index: Any,
    cache: RagCache,
    query: str,
    k: int,
    kw: dict[str, Any],
    extra: dict[str, Any] | None,
) -> tuple[int, str]:
    unknown = set(kw) - _SEARCH_ARGS
    if unknown:
        raise ConfigError(f"{fname} got unknown arguments {sorted(unknown)}; pass them in extra=")
    version = int(index.version)
    cache.set_index_version(version)
    parts = {name: kw.get(name) for name in _SEARCH_ARGS}
    key = cache_key(level="retrieval", query=query, k=k, index_version=version, extra=extra or {}, **parts)
    return version, key


def cached_search(
    index: Any,
    cache: RagCache,
    query: str,
    k: int = 10,
    *,
    extra: dict[str, Any] | None = None,
    **search_kw: Any,
) -> list[Any]:
    """`index.search(query, k, **search_kw)` through the retrieval cache.

    The key holds the query, k, filters, access scope, weights, candidate_k, `extra` (any other setting
    that changes the hits) and `index.version`; hits are deep-copied in and out so a caller mutating
    them cannot poison the cache.
    """
    version, key = _prepare("cached_search", index, cache, query, k, search_kw, extra)
    hit = cache.retrieval.get(key, _MISSING, version=version)
    if hit is not _MISSING:
        return copy.deepcopy(hit)  # type: ignore[no-any-return]
    hits = index.search(query, k, **search_kw)
    cache.retrieval.put(key, copy.deepcopy(hits), version=version)
    return list(hits)


async def acached_search(
    index: Any,
    cache: RagCache,
    query: str,
    k: int = 10,
    *,
    extra: dict[str, Any] | None = None,
    **search_kw: Any,
) -> list[Any]:
    """Async `cached_search` over `index.asearch`."""
    version, key = _prepare("acached_search", index, cache, query, k, search_kw, extra)
    hit = cache.retrieval.get(key, _MISSING, version=version)
    if hit is not _MISSING:
        return copy.deepcopy(hit)  # type: ignore[no-any-return]
    hits = await index.asearch(query, k, **search_kw)
    cache.retrieval.put(key, copy.deepcopy(hits), version=version)
    return list(hits)
