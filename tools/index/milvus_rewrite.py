"""Rewriting a Milvus Lite collection so deleted rows leave the file.

Milvus Lite's `compact()` does nothing (measured with milvus-lite 3.2.2: a deleted row's text stays in its
data file), so after a hard delete or purge the backend copies the live rows of each collection into a new
one and swaps it in: copy into `<name>__rw`, rename `<name>` to `<name>__old`, rename the copy to `<name>`,
drop the old one (dropping deletes its files). A process killed in between is repaired by `recover` at the
next open. A Lite file has one process (it holds the file's lock), so no other process sees the swap; the
backend's write lock keeps this process's writers out. A server compacts on its own (asynchronously).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WRITE_BATCH = 256  # rows per insert call

REWRITE, OLD = "__rw", "__old"


def recover(client: Any, name: str) -> None:
    """Finish or undo a rewrite of `name` that a killed process left half done."""
    existing = set(client.list_collections())
    if name not in existing and name + OLD in existing:
        client.rename_collection(name + OLD, name)  # killed between the renames: the old copy is whole
    elif name + OLD in existing:
        client.drop_collection(name + OLD)  # killed before the drop: the new copy is in place
    if name + REWRITE in existing:
        client.drop_collection(name + REWRITE)  # killed while copying


def rewrite(client: Any, name: str, create: Callable[[str], None]) -> int:
    """Copy `name`'s rows into a fresh collection made by `create(new_name)` and swap it in; rows copied."""
    recover(client, name)
    fields = [
        f["name"]
        for f in client.describe_collection(name)["fields"]
        if not f.get("is_function_output")  # BM25 vectors are recomputed from their text on insert
    ]
    tmp = name + REWRITE
    create(tmp)
    client.load_collection(tmp)
    it = client.query_iterator(name, batch_size=WRITE_BATCH, filter='pk != ""', output_fields=fields)
    copied = 0
    try:
        while batch := it.next():
            client.insert(tmp, batch)
            copied += len(batch)
    finally:
        it.close()
    client.flush(tmp)
    client.rename_collection(name, name + OLD)
    client.rename_collection(tmp, name)
    client.drop_collection(name + OLD)
    client.load_collection(name)
    return copied
