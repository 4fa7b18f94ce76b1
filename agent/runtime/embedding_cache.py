"""The process's one text -> vector cache: the embedding level of the query path's `RagCache`.

`ragroute.runtime.caching` owns the process-wide RagCache and hands its embedding level here whenever it
is (re)placed; `ragroute.runtime.providers.embedder()` reads it from here. Keeping it apart lets providers
use the cache without importing the caching module, which itself builds on providers.
"""

from __future__ import annotations

from typing import Any

from ragroute.tools.cache import CacheLevel

EMBEDDING_ENTRIES = 10_000

# replaced by the RagCache's own level as soon as ragroute.runtime.caching is imported
_level: CacheLevel[Any] = CacheLevel(EMBEDDING_ENTRIES, name="embeddings")


def level() -> CacheLevel[Any]:
    """The embedding level in use in this process."""
    return _level


def use(new: CacheLevel[Any]) -> None:
    """Serve embeddings from `new` from now on (caching.set_cache calls this)."""
    global _level
    _level = new
