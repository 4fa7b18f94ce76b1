"""What a running server holds: its settings and the index it serves (opened once, shared by every run)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ragroute.runtime.providers import Providers
from ragroute.server.auth import Identity
from ragroute.tools.index import HybridIndex
from ragroute.tools.types import SearchHit

DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MAX_UPLOAD_BYTES = 20_000_000
DEFAULT_MAX_QUESTION_CHARS = 2_000
DEFAULT_MAX_BATCH_INPUTS = 32  # /ask/batch: more inputs are a 413, so one caller cannot hold the workers


@dataclass
class ServerSettings:
    """What `create_app` was configured with (the parts request handlers need)."""

    index_dir: str
    llm: str | None = None
    keys: dict[str, Identity] = field(default_factory=dict)
    max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS
    max_batch_inputs: int = DEFAULT_MAX_BATCH_INPUTS
    tracing: bool = True
    redact_pii: bool = False  # force Context.redact_query_pii on every run and redact ingested documents


class IndexHolder:
    """Opens the index once (lazily, thread-safe) and serves it to the graph's runs.

    The holder is itself a `SearchIndex` (it forwards to the open index), so the app's graph is bound to
    it once, `Providers(index=holder)`, before the index is opened."""

    def __init__(self, index_dir: str, index: Any = None) -> None:
        self.index_dir = index_dir
        self._index = index
        self._owned = index is None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The open index (opened on first use)."""
        with self._lock:
            if self._index is None:
                self._index = HybridIndex.open(self.index_dir)
            return self._index

    def providers(self) -> Providers:
        """What the server's runs use: this holder as their index."""
        return Providers(index=self)

    def search(self, query: str, k: int = 10, **options: Any) -> list[SearchHit]:
        """`search` of the open index (filters, access, weights, candidate_k passed on)."""
        return list(self.get().search(query, k, **options))

    def get_parent(self, parent_id: str) -> Any:
        """`get_parent` of the open index."""
        return self.get().get_parent(parent_id)

    @property
    def path(self) -> str:
        """The open index's directory."""
        return str(getattr(self.get(), "path", self.index_dir))

    @property
    def location(self) -> str:
        """The open index's location (a folder, or a Milvus URL: what caches key on across replicas)."""
        index = self.get()
        return str(getattr(index, "location", None) or getattr(index, "path", self.index_dir))

    @property
    def uid(self) -> str | None:
        """The open index's uid (the response cache keys name it)."""
        return getattr(self.get(), "uid", None)

    @property
    def version(self) -> Any:
        """The open index's persisted version (raises when it is closed, as the index does)."""
        return self.get().version

    def close(self) -> None:
        """Close the index if this holder opened it."""
        with self._lock:
            if self._index is not None and self._owned:
                self._index.close()
                self._index = None
