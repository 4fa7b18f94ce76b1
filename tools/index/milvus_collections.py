"""Row-level access to the chunk, parent and sentence collections of one Milvus index: paged reads,
batched inserts, deletes by generation, soft-delete marks, counts and stored vectors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from ragroute.tools.index import milvus_registry as R
from ragroute.tools.index import sentences as S
from ragroute.tools.index.milvus_filters import literal

WRITE_BATCH = 256  # rows per insert or upsert call
ALL = 'pk != ""'  # every row


class _NoMvccNoise(logging.Filter):
    """Milvus Lite has no MVCC timestamps: each query iterator asks for one (its in-process gRPC server logs
    "Method not implemented!" with a traceback) and then warns that it uses the client's clock instead.
    Both are expected there; this drops exactly those two records."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "mvccTs" not in msg and "Method not implemented" not in msg


for _name in ("pymilvus.client.iterator.query_iterator", "grpc._server"):
    logging.getLogger(_name).addFilter(_NoMvccNoise())


class Collections:
    """The client and collection names (role -> name) of one index, with the row operations it needs."""

    def __init__(self, client: Any, names: dict[str, str]) -> None:
        self.client, self.names = client, names

    def rows(self, role: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching `expr` (paged: a plain query returns at most 16384)."""
        it = self.client.query_iterator(self.names[role], batch_size=1000, filter=expr, output_fields=fields)
        out: list[dict[str, Any]] = []
        try:
            while batch := it.next():
                out.extend(batch)
        finally:
            it.close()
        return out

    def query_in(
        self, role: str, field: str, values: Sequence[str], fields: list[str]
    ) -> list[dict[str, Any]]:
        """Rows whose `field` is one of `values`."""
        out: list[dict[str, Any]] = []
        for part in R.batches(list(dict.fromkeys(values))):
            out += self.client.query(self.names[role], filter=R.id_in(field, part), output_fields=fields)
        return out

    def insert(self, role: str, rows: list[dict[str, Any]]) -> None:
        """Insert rows in batches."""
        for start in range(0, len(rows), WRITE_BATCH):
            self.client.insert(self.names[role], rows[start : start + WRITE_BATCH])

    def delete_gens(self, gens: Sequence[str]) -> None:
        """Delete the chunk, parent and sentence rows of these generations (ids unique per write)."""
        for part in R.batches(list(gens)):
            for role in ("chunks", "parents", "sentences"):
                self.client.delete(self.names[role], filter=R.id_in("gen", part))

    def mark_deleted(self, doc_id: str, gen: str, deleted: bool) -> None:
        """Set the soft-delete mark of one generation's chunk rows (a partial update: vectors stay)."""
        expr = f"doc_id == {literal(doc_id)} and gen == {literal(gen)}"
        pks = [r["pk"] for r in self.rows("chunks", expr, ["pk"])]
        for part in R.batches(pks, WRITE_BATCH):
            self.client.upsert(
                self.names["chunks"], [{"pk": pk, "deleted": deleted} for pk in part], partial_update=True
            )

    def count(self, role: str, expr: str = ALL) -> int:
        """Rows matching `expr`."""
        rows = self.client.query(self.names[role], filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def dense_vectors(self, vector_ids: Sequence[str]) -> dict[str, list[float]]:
        """Stored chunk vectors by content key (any generation: the key fixes the embedded text)."""
        rows = self.query_in("chunks", "vector_id", vector_ids, ["vector_id", "dense"])
        return {r["vector_id"]: list(r["dense"]) for r in rows}

    def sentence_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored sentence vectors (float32, unit length) by key."""
        out = {}
        for r in self.query_in("sentences", "key", keys, ["key", "vec"]):
            v = np.asarray(r["vec"], dtype=np.float32)
            norm = float(np.linalg.norm(v))
            out[r["key"]] = v / norm if norm > 0 else v
        return out

    def sentence_blobs(self, keys: list[str]) -> dict[str, bytes]:
        """Stored sentence vectors in the blob form sentences.py computes with."""
        return {k: S.encode(v[None, :])[0] for k, v in self.sentence_vectors(keys).items()}

    def compact(self, log: logging.Logger) -> None:
        """Ask Milvus to compact every collection (housekeeping: a refusal is logged, not raised)."""
        for name in self.names.values():
            try:
                self.client.compact(name)
            except Exception as exc:  # e.g. a server that refuses manual compaction
                log.warning("Milvus compaction of %s failed: %s", name, exc)
