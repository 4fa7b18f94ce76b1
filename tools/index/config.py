"""IndexConfig: where an index lives and how it retrieves, validated on construction."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ragroute.tools.errors import ConfigError
from ragroute.tools.hybrid import DEFAULT_DOC_TYPE_WEIGHTS, RETRIEVERS, validate_weights
from ragroute.tools.index.milvus_location import is_milvus, parse_location
from ragroute.tools.location import default_location
from ragroute.tools.vectorstore import CHROMA_MODES

MAX_K = 1000
DEFAULT_GRACE_DAYS = 30.0  # soft-deleted documents `purge_deleted()` keeps by default
_COLLECTION_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


def local_folder(location: str) -> str:
    """The local folder of an index location: the folder itself, or a Milvus location's state folder (where
    threads, PII mappings and feedback are kept)."""
    if is_milvus(location):
        return parse_location(location).state_dir
    return os.path.abspath(os.path.expanduser(location))


@dataclass
class IndexConfig:
    """Where the index lives and how it retrieves; validated on construction.

    `path` is a folder (the embedded backend) or a Milvus URL (see milvus_location.py); for a URL,
    `location` keeps the URL and `path` becomes the local folder for the files kept beside an index.
    """

    path: str = field(default_factory=default_location)
    location: str = ""  # the Milvus URL, or "" for the embedded backend (set from `path`)
    chroma_mode: str = "persistent"
    chroma_host: str = "localhost"
    chroma_port: int = 8000
    collection: str = "ragroute"
    embedding: str = "minilm"
    rrf_k: int = 60
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "bm25": 1.0})
    doc_type_weights: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_DOC_TYPE_WEIGHTS.items()}
    )
    # candidates fetched from each retriever before fusion when search() gets no candidate_k
    candidate_k: int = 50
    lock_timeout_s: float = 10.0
    # store per-sentence vectors at ingest (offline reranker/generator skip re-embedding per query); costs
    # ingest time and ~0.8 KB per sentence; only used when `embedding` is the offline sentence model
    sentence_vectors: bool = True
    # open Chroma (and reconcile it with SQLite) on the first vector read or write instead of at open:
    # for short admin commands (stats, soft delete, restore, purge) that may never touch a vector. A
    # long-lived process keeps the default, so Chroma is open and reconciled before its threads start.
    lazy_vectors: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.path, str | os.PathLike) or not str(self.path).strip():
            raise ConfigError(f"index path must be a non-empty path, got {self.path!r}")
        if is_milvus(self.location or self.path):
            where = parse_location(str(self.location or self.path))
            self.location, self.path = where.url, where.state_dir
        elif self.location:
            raise ConfigError(
                f"location must be a Milvus URL (milvus://HOST:PORT/NAME), got {self.location!r}"
            )
        self.path = os.path.abspath(os.path.expanduser(str(self.path)))
        if self.chroma_mode not in CHROMA_MODES:
            raise ConfigError(f"unknown chroma_mode {self.chroma_mode!r}; options: {', '.join(CHROMA_MODES)}")
        if not isinstance(self.chroma_port, int) or not 0 < self.chroma_port < 65536:
            raise ConfigError(f"chroma_port must be an integer in 1..65535, got {self.chroma_port!r}")
        if not isinstance(self.collection, str) or not _COLLECTION_RE.match(self.collection):
            raise ConfigError(
                f"collection {self.collection!r} must be 3-512 characters of [a-zA-Z0-9._-], "
                "starting and ending with a letter or digit"
            )
        if not isinstance(self.rrf_k, int) or isinstance(self.rrf_k, bool) or self.rrf_k < 0:
            raise ConfigError(f"rrf_k must be an integer >= 0, got {self.rrf_k!r}")
        if not isinstance(self.candidate_k, int) or self.candidate_k < 1:
            raise ConfigError(f"candidate_k must be an integer >= 1, got {self.candidate_k!r}")
        if not isinstance(self.lazy_vectors, bool):
            raise ConfigError(f"lazy_vectors must be true or false, got {self.lazy_vectors!r}")
        if not isinstance(self.sentence_vectors, bool):
            raise ConfigError(f"sentence_vectors must be true or false, got {self.sentence_vectors!r}")
        self.weights = validate_weights(self.weights, what="weights")
        if not isinstance(self.doc_type_weights, dict):
            raise ConfigError("doc_type_weights must map doc_type -> {'dense': w, 'bm25': w}")
        self.doc_type_weights = {
            str(t): validate_weights(w, what=f"doc_type_weights[{t!r}]")
            for t, w in self.doc_type_weights.items()
        }

    @property
    def backend(self) -> str:
        """ "milvus" for a Milvus location, else "embedded"."""
        return "milvus" if self.location else "embedded"


__all__ = ["DEFAULT_GRACE_DAYS", "MAX_K", "RETRIEVERS", "IndexConfig", "is_milvus", "local_folder"]
