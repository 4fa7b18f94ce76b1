"""What a running server holds: its settings and the index it serves (opened once, shared by every run)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ragroute.runtime import providers
from ragroute.server.auth import Identity
from ragroute.tools.index import HybridIndex

DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MAX_UPLOAD_BYTES = 20_000_000
DEFAULT_MAX_QUESTION_CHARS = 2_000


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
            providers.register_index(self.index_dir, index)

    def get(self) -> Any:
        """The open index (opened and registered on first use)."""
        with self._lock:
            if self._index is None:
                self._index = HybridIndex.open(self.index_dir)
                providers.register_index(self.index_dir, self._index)
            return self._index

    def close(self) -> None:
        """Close the index if this holder opened it."""
        with self._lock:
            if self._index is not None and self._owned:
                providers.forget_index(self.index_dir)
                self._index.close()
                self._index = None
