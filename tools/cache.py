"""Cache keys and cache levels for the query path: embeddings (LRU), retrieval results and answers (TTL).

A cache key must include the caller's access scope: two callers with different groups or clearance never
share an entry, so a cached answer cannot leak a document to someone who may not see it. The query path
(`ragroute.runtime.caching`) also puts the index's identity and version in every key, so an entry made
before an ingest or delete is never served after it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import cachetools
from ragroute.tools.errors import ConfigError, InputError, check_unicode
from ragroute.tools.types import AccessScope

V = TypeVar("V")
_MISSING = object()
MAX_KEY_DEPTH = 100  # levels of lists and dicts in one key part (a filter stops at about 70)


# -------------------------------------------------------------------------------------------- cache keys


def _canonical(value: Any, where: str, depth: int = 0) -> Any:
    """JSON-able form with a single spelling for equal values (sorted keys, sorted sets)."""
    if depth > MAX_KEY_DEPTH:  # before Python's recursion limit, and json.dumps's
        raise InputError(
            f"cache key part {where.split('.')[0].split('[')[0]!r} nests deeper than {MAX_KEY_DEPTH} levels"
        )
    if isinstance(value, AccessScope):
        return scope_part(value)
    if isinstance(value, str):
        check_unicode(value, f"cache key part {where!r}")
        return value
    if value is None or isinstance(value, bool | int):
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
            check_unicode(k, f"a key of cache key part {where!r}")
            out[k] = _canonical(v, f"{where}.{k}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_canonical(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [_canonical(v, f"{where}{{}}", depth + 1) for v in value]
        return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canonical(dataclasses.asdict(value), where, depth + 1)
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


def embedding_key(model: str, text: str) -> str:
    """Key of one embedding: the model name and the exact text."""
    return cache_key(level="embeddings", model=model, text=text)


# ------------------------------------------------------------------------------------------------ levels


class _CountsEvictions:
    """Mixed into a cachetools cache: counts the entries it evicts when full (it calls popitem for those)."""

    evictions = 0
    expirations = 0

    def popitem(self) -> tuple[Any, Any]:
        item = super().popitem()  # type: ignore[misc]
        self.evictions += 1
        return item  # type: ignore[no-any-return]


class _LRU(_CountsEvictions, cachetools.LRUCache):  # type: ignore[type-arg]
    """cachetools' LRU cache, counting evictions."""


class _TTL(_CountsEvictions, cachetools.TTLCache):  # type: ignore[type-arg]
    """cachetools' TTL cache (least recently used evicted when full), counting evictions and expiries."""

    def expire(self, time: float | None = None) -> list[tuple[Any, Any]]:
        expired = super().expire(time)
        self.expirations += len(expired)
        return expired  # type: ignore[no-any-return]


class CacheLevel(Generic[V]):
    """One thread-safe cache level: a cachetools LRU cache bounded by entry count, or a TTL cache when
    `ttl_s` is set (entries expire that many seconds after they were stored, read from `timer`).

    It counts hits and misses, which cachetools does not.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        *,
        ttl_s: float | None = None,
        timer: Callable[[], float] = time.monotonic,
        name: str = "cache",
    ) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ConfigError(f"cache {name!r}: max_entries must be an int >= 1, got {max_entries!r}")
        if ttl_s is not None and (not isinstance(ttl_s, int | float) or not ttl_s > 0):
            raise ConfigError(f"cache {name!r}: ttl_s must be a number > 0 or None, got {ttl_s!r}")
        self.name = name
        self.max_entries = max_entries
        self.ttl_s = float(ttl_s) if ttl_s is not None else None
        self.timer = timer
        self._data: _LRU | _TTL = (
            _TTL(max_entries, self.ttl_s, timer=timer) if self.ttl_s is not None else _LRU(max_entries)
        )
        # cachetools caches are not thread-safe: even a read reorders the LRU links
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: str, default: Any = None) -> V | Any:
        """The cached value, or `default` on a miss (absent or expired)."""
        with self._lock:
            if isinstance(self._data, _TTL):
                self._data.expire()  # drop (and count) what has expired before looking
            value = self._data.get(key, _MISSING)
            if value is _MISSING:
                self._misses += 1
                return default
            self._hits += 1
            return value

    def put(self, key: str, value: V) -> None:
        """Store `value`; evicts the least recently used entry when full."""
        with self._lock:
            self._data[key] = value

    def get_or_compute(self, key: str, compute: Callable[[], V]) -> V:
        """Cached value, or compute, store and return it (compute runs outside the lock)."""
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        value = compute()
        self.put(key, value)
        return value

    def invalidate(self, key: str) -> bool:
        """Drop one entry; True when it existed."""
        with self._lock:
            return self._data.pop(key, _MISSING) is not _MISSING

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

    def stats(self) -> dict[str, Any]:
        """Hits, misses, hit rate, size and eviction/expiry counts."""
        with self._lock:
            total = self._hits + self._misses
            return {
                "hits": self._hits,
                "misses": self._misses,
                "hit_rate": round(self._hits / total, 4) if total else 0.0,
                "size": len(self._data),
                "max_entries": self.max_entries,
                "ttl_s": self.ttl_s,
                "evictions": self._data.evictions,
                "expirations": self._data.expirations,
            }


LEVELS = ("embeddings", "retrieval", "responses")


class RagCache:
    """The three cache levels the query path uses.

    embeddings: text -> vector, keyed by `embedding_key(model, text)` (LRU, independent of any index).
    retrieval: search hits, keyed by `cache_key(...)` (TTL).
    responses: final answers, keyed by `cache_key(...)` (TTL).
    """

    def __init__(
        self,
        *,
        embedding_entries: int = 10_000,
        retrieval_entries: int = 2_000,
        retrieval_ttl_s: float = 300.0,
        response_entries: int = 1_000,
        response_ttl_s: float = 600.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.embeddings: CacheLevel[Any] = CacheLevel(embedding_entries, timer=timer, name="embeddings")
        self.retrieval: CacheLevel[Any] = CacheLevel(
            retrieval_entries, ttl_s=retrieval_ttl_s, timer=timer, name="retrieval"
        )
        self.responses: CacheLevel[Any] = CacheLevel(
            response_entries, ttl_s=response_ttl_s, timer=timer, name="responses"
        )

    def level(self, name: str) -> CacheLevel[Any]:
        """One level by name."""
        if name not in LEVELS:
            raise ConfigError(f"unknown cache level {name!r}; options: {', '.join(LEVELS)}")
        return getattr(self, name)  # type: ignore[no-any-return]

    def clear(self) -> None:
        """Empty every level."""
        for name in LEVELS:
            self.level(name).clear()

    def stats(self) -> dict[str, Any]:
        """Per-level stats."""
        return {name: self.level(name).stats() for name in LEVELS}
