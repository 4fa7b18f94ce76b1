"""The document registry and the meta rows of a Milvus index: which write (generation) of each document
is committed, its trash state, and the index's uid and version counter.

A generation id is ``<time in ns, 16 hex digits><8 random hex digits>``: unique per write, and its age can
be read off it, so reconcile can tell an abandoned write from one still in progress.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ragroute.tools.index.milvus_filters import literal, literal_list
from ragroute.tools.index.milvus_schema import PLACEHOLDER

LIVE, TRASH = "live", "trash"
_IN_BATCH = 500  # ids per `in [...]` expression
_DOC_FIELDS = [
    "pk",
    "gen",
    "state",
    "content_hash",
    "vids",
    "metadata",
    "n_chunks",
    "updated_at",
    "deleted_at",
]


def new_gen() -> str:
    """A fresh generation id (see the module docstring)."""
    return f"{time.time_ns():016x}{secrets.token_hex(4)}"


def gen_age_s(gen: str, now: float | None = None) -> float:
    """Seconds since a generation was made (a malformed id counts as very old)."""
    try:
        made = int(gen[:16], 16) / 1e9
    except ValueError:
        return float("inf")
    return (time.time() if now is None else now) - made


def batches(ids: Sequence[str], size: int = _IN_BATCH) -> Iterator[list[str]]:
    """`ids` in slices small enough for one `in [...]` expression."""
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def id_in(field: str, ids: Iterable[str]) -> str:
    """`field in [...]` for string ids."""
    return f"{field} in {literal_list(ids)}"


class Registry:
    """Reads and writes of the documents and meta collections."""

    def __init__(self, client: Any, documents: str, meta: str) -> None:
        self.client, self.documents, self.meta = client, documents, meta

    # ------------------------------------------------------------------ meta rows
    def meta_get(self, key: str) -> Any:
        """A meta value (JSON-decoded), or None."""
        rows = self.client.query(self.meta, filter=f"pk == {literal(key)}", output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def meta_set(self, values: dict[str, Any]) -> None:
        """Write meta values."""
        self.client.upsert(
            self.meta,
            [{"pk": k, "value": json.dumps(v), "placeholder": PLACEHOLDER} for k, v in values.items()],
        )

    def ensure_uid(self) -> str:
        """The index's uid, made on first open."""
        uid = self.meta_get("uid")
        if uid is None:
            uid = uuid.uuid4().hex
            self.meta_set({"uid": uid, "version": 0})
        return str(uid)

    def version(self) -> int:
        """The current version counter."""
        return int(self.meta_get("version") or 0)

    def bump(self, **extra: Any) -> int:
        """Give the contents a new version: distinct from every earlier one even when two processes bump
        at once (a read-modify-write would let both write the same number), because it is at least the
        current time in microseconds."""
        version = max(self.version() + 1, time.time_ns() // 1000)
        self.meta_set({"version": version, "updated_at": time.time(), **extra})
        return version

    def count_hard_deletes(self, n: int) -> None:
        """Add to the hard-deletion counter (a read-modify-write: two processes deleting at the same moment
        may count one; it is a statistic, nothing keys on it)."""
        self.meta_set({"hard_deleted": int(self.meta_get("hard_deleted") or 0) + n})

    # ------------------------------------------------------------------ documents
    def rows(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Registry rows (live or trashed) by doc_id."""
        out: dict[str, dict[str, Any]] = {}
        for part in batches(list(dict.fromkeys(doc_ids))):
            for row in self.client.query(self.documents, filter=id_in("pk", part), output_fields=_DOC_FIELDS):
                out[row["pk"]] = row
        return out

    def row(self, doc_id: str) -> dict[str, Any] | None:
        """One registry row, or None."""
        return self.rows([doc_id]).get(doc_id)

    def committed(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """doc_id -> committed generation of the live documents among `doc_ids`."""
        out: dict[str, str] = {}
        for part in batches(list(dict.fromkeys(doc_ids))):
            expr = f"{id_in('pk', part)} and state == {literal(LIVE)}"
            for row in self.client.query(self.documents, filter=expr, output_fields=["gen"]):
                out[row["pk"]] = row["gen"]
        return out

    def all_rows(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every registry row (of one state), by doc_id."""
        expr = f"state == {literal(state)}" if state else 'pk != ""'
        it = self.client.query_iterator(
            self.documents, batch_size=1000, filter=expr, output_fields=_DOC_FIELDS
        )
        out: list[dict[str, Any]] = []
        try:
            while batch := it.next():
                out.extend(batch)
        finally:
            it.close()
        return sorted(out, key=lambda r: r["pk"])

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert whole registry rows: the commit point of every write (last writer wins)."""
        if rows:
            self.client.upsert(self.documents, [{**r, "placeholder": PLACEHOLDER} for r in rows])

    def remove(self, doc_ids: Sequence[str]) -> None:
        """Delete registry rows."""
        for part in batches(list(doc_ids)):
            self.client.delete(self.documents, filter=id_in("pk", part))

    def count(self, state: str) -> int:
        """How many documents are in `state`."""
        rows = self.client.query(
            self.documents, filter=f"state == {literal(state)}", output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"]) if rows else 0


def doc_row(
    doc_id: str,
    gen: str,
    *,
    state: str,
    content_hash: str,
    vids: str,
    metadata: dict[str, Any],
    n_chunks: int,
    updated_at: float,
    deleted_at: float = 0.0,
) -> dict[str, Any]:
    """A registry row."""
    return {
        "pk": doc_id,
        "gen": gen,
        "state": state,
        "content_hash": content_hash,
        "vids": vids,
        "metadata": metadata,
        "n_chunks": n_chunks,
        "updated_at": updated_at,
        "deleted_at": deleted_at,
    }


def public_doc(row: dict[str, Any]) -> dict[str, Any]:
    """A registry row as list_documents / deleted_documents report it."""
    out = {
        "doc_id": row["pk"],
        "content_hash": row["content_hash"],
        "n_chunks": int(row["n_chunks"]),
        "metadata": row["metadata"] or {},
        "updated_at": float(row["updated_at"]),
    }
    if row["state"] == TRASH:
        del out["content_hash"]
        out["deleted_at"] = float(row["deleted_at"])
    return out
