"""The hybrid index: `HybridIndex` (dense + BM25 retrieval with filters and ACL, soft delete, sentence
vectors) over a storage backend behind the `IndexBackend` Protocol.

Modules: config (IndexConfig), lock (the directory lock), records (validated writes), backend (the
Protocol), docstore (SQLite rows), reconcile (Chroma <-> SQLite repair), embedded (the SQLite + Chroma +
BM25 backend), search (query checks, scope, fusion), sentences (stored sentence vectors and their
process-wide lookup), stats, pii_files, hybrid_index (the facade). The Milvus backend (`milvus://`):
milvus_location (URL forms), milvus_schema (collections), milvus_filters (filter + ACL expressions),
milvus_registry (document registry, generations, version), milvus_rows, milvus_collections (row access),
milvus_upkeep (reconcile, backfill, stats) and milvus_backend (the write protocol and searches).
"""

from ragroute.tools.index.backend import Deletion, IndexBackend, SearchScope
from ragroute.tools.index.config import DEFAULT_GRACE_DAYS, MAX_K, RETRIEVERS, IndexConfig
from ragroute.tools.index.docstore import SCHEMA
from ragroute.tools.index.embedded import EmbeddedBackend
from ragroute.tools.index.hybrid_index import HybridIndex, open_index
from ragroute.tools.index.milvus_backend import MilvusBackend
from ragroute.tools.index.records import ChunkRecord, DocumentWrite
from ragroute.tools.index.sentences import SENTENCE_MODEL, SentenceSource, lookup, sentence_key

__all__ = [
    "DEFAULT_GRACE_DAYS",
    "MAX_K",
    "RETRIEVERS",
    "SCHEMA",
    "SENTENCE_MODEL",
    "ChunkRecord",
    "Deletion",
    "DocumentWrite",
    "EmbeddedBackend",
    "HybridIndex",
    "IndexBackend",
    "IndexConfig",
    "MilvusBackend",
    "SearchScope",
    "SentenceSource",
    "lookup",
    "open_index",
    "sentence_key",
]
