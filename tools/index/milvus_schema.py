"""The Milvus collections of one index (all named `<prefix>_<role>`), created on first open and loaded.

- chunks:    pk "<chunk_id>#<gen>", chunk_id, doc_id, gen (the write that made the row), ord, vector_id
             (content key from records.py), parent_id, text, terms (our analyzer's tokens, which Milvus's
             BM25 function turns into `sparse`), dense (COSINE), metadata (JSON), filt (JSON, see
             milvus_filters.py), access_groups, security_level, doc_type, deleted (soft-delete hint)
- parents:   pk "<parent_id>#<gen>#<piece>", parent_id, doc_id, gen, piece, text, section (long sections
             are stored in pieces: a VARCHAR holds at most 65535 bytes)
- documents: the registry, pk doc_id: gen (the committed write), state ("live" | "trash"), content_hash,
             vids (digest of the chunk content keys), metadata, n_chunks, updated_at, deleted_at
- sentences: pk "<key>#<gen>", key, doc_id, gen, vec (sentence vectors of the offline reranker)
- meta:      pk key, value (JSON): uid, version, embedding, embedding_dim, hard_deleted, updated_at

Milvus needs a vector field in every collection; parents, documents and meta carry a 2-dim placeholder.
Collections are created with consistency level Strong, so a read sees every acknowledged write.
"""

from __future__ import annotations

from typing import Any

from ragroute.tools.errors import ConfigError
from ragroute.tools.index.milvus_rewrite import recover

ROLES = ("chunks", "parents", "documents", "sentences", "meta")
ID_LEN = 4096  # bytes of an id field (chunk, document and parent ids come from file paths)
TEXT_LEN = 65535  # Milvus's largest VARCHAR
GEN_LEN = 64
PLACEHOLDER = [0.0, 1.0]  # the vector of collections that need one but search none
CONSISTENCY = "Strong"


def collection_names(prefix: str) -> dict[str, str]:
    """role -> collection name."""
    return {role: f"{prefix}_{role}" for role in ROLES}


def _schema(client: Any, role: str, dim: int) -> tuple[Any, Any]:
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    idx = client.prepare_index_params()
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=ID_LEN + 2 * GEN_LEN)
    if role == "meta":
        s.add_field("value", DataType.VARCHAR, max_length=TEXT_LEN)
    elif role == "documents":
        s.add_field("gen", DataType.VARCHAR, max_length=GEN_LEN)
        s.add_field("state", DataType.VARCHAR, max_length=16)
        s.add_field("content_hash", DataType.VARCHAR, max_length=1024)
        s.add_field("vids", DataType.VARCHAR, max_length=GEN_LEN)
        s.add_field("metadata", DataType.JSON)
        s.add_field("n_chunks", DataType.INT64)
        s.add_field("updated_at", DataType.DOUBLE)
        s.add_field("deleted_at", DataType.DOUBLE)
    else:
        s.add_field("doc_id", DataType.VARCHAR, max_length=ID_LEN)
        s.add_field("gen", DataType.VARCHAR, max_length=GEN_LEN)
    if role == "parents":
        s.add_field("parent_id", DataType.VARCHAR, max_length=ID_LEN)
        s.add_field("piece", DataType.INT64)
        s.add_field("text", DataType.VARCHAR, max_length=TEXT_LEN)
        s.add_field("section", DataType.VARCHAR, max_length=TEXT_LEN)
    if role == "sentences":
        s.add_field("key", DataType.VARCHAR, max_length=64)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        idx.add_index("vec", index_type="AUTOINDEX", metric_type="COSINE")
    elif role == "chunks":
        s.add_field("chunk_id", DataType.VARCHAR, max_length=ID_LEN)
        s.add_field("ord", DataType.INT64)
        s.add_field("vector_id", DataType.VARCHAR, max_length=ID_LEN + GEN_LEN)
        s.add_field("parent_id", DataType.VARCHAR, max_length=ID_LEN)
        s.add_field("text", DataType.VARCHAR, max_length=TEXT_LEN)
        # our analyzer's tokens joined by spaces: Milvus's standard tokenizer splits them back exactly, so
        # BM25 sees the same terms (stemming, stopwords) as the embedded backend
        s.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=TEXT_LEN,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        s.add_field("metadata", DataType.JSON)
        s.add_field("filt", DataType.JSON)
        s.add_field(
            "access_groups", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=1024, max_length=1024
        )
        s.add_field("security_level", DataType.INT64)
        s.add_field("doc_type", DataType.VARCHAR, max_length=1024)
        s.add_field("deleted", DataType.BOOL)
        s.add_function(
            Function(
                name="terms_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        idx.add_index("dense", index_type="AUTOINDEX", metric_type="COSINE")
        # the same k1 and b as the embedded backend's BM25Okapi (tools/bm25.py)
        idx.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": 1.5, "bm25_b": 0.75},
        )
    else:
        if role != "sentences":
            s.add_field("placeholder", DataType.FLOAT_VECTOR, dim=len(PLACEHOLDER))
            idx.add_index("placeholder", index_type="AUTOINDEX", metric_type="L2")
    return s, idx


def vector_dim(client: Any, name: str) -> int | None:
    """The dense dimension of an existing chunks collection."""
    for f in client.describe_collection(name).get("fields", []):
        if f.get("name") == "dense":
            return int(f.get("params", {}).get("dim"))
    return None


def ensure_collections(client: Any, prefix: str, dim: int) -> dict[str, str]:
    """Create missing collections (dense size `dim`) and load them all; role -> name."""
    names = collection_names(prefix)
    existing = set(client.list_collections())
    if names["chunks"] in existing:
        stored = vector_dim(client, names["chunks"])
        if stored is not None and stored != dim:
            raise ConfigError(
                f"Milvus index {prefix!r} holds {stored}-dim vectors but the embedder gives {dim}; open it "
                "with the embedding it was built with, or use another index name"
            )
    for role, name in names.items():
        recover(client, name)
        if name not in set(client.list_collections()):
            create_collection(client, role, name, dim)
        client.load_collection(name)
    return names


def create_collection(client: Any, role: str, name: str, dim: int) -> None:
    """Create one collection of the given role."""
    schema, idx = _schema(client, role, dim)
    client.create_collection(name, schema=schema, index_params=idx, consistency_level=CONSISTENCY)
