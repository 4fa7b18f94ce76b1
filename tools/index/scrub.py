"""Leave no deleted text on disk: the SQLite files of an embedded index after a hard delete or a redacting
re-ingest.

Deleting rows is not enough. Chroma keeps every upsert, metadata included, in its write-ahead log (the
`embeddings_queue` table of chroma.sqlite3) until its HNSW segment persists, which by default happens
only every 1000 records, and a SQLite file keeps freed pages and the `-wal` file keeps old pages. So:

- Chroma's log: rows its metadata segment has already applied (seq_id <= that segment's max_seq_id) get
  their `metadata` blanked. The HNSW segment replays the log on open from ids, operations and vectors
  only, so nothing it needs is lost; rows not yet applied are left alone.
- both SQLite files are VACUUMed (copies live pages into a fresh file) and their WAL truncated.
- Chroma's collection schema lists every metadata key ever written, and some of our keys embed values
  (`section_path__has__"<heading>"`); keys no stored vector uses any more are dropped from it.
- Chroma's HNSW files are written from a buffer allocated for `max_elements` slots but never cleared,
  so the slots past the element count hold whatever the process heap held before (raw text included).
  Those unused slots are zeroed on disk; used slots hold only links, vectors and labels.

This costs a full copy of each file, so it runs only when PII or deleted text must go, never per write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import struct
from pathlib import Path

log = logging.getLogger("ragroute.tools.index")

CHROMA_SQLITE = "chroma.sqlite3"
# header.bin of Chroma's persistent hnswlib (version 1): int32 version, then size_t offsetLevel0,
# max_elements, cur_element_count, size_data_per_element, ... (100 bytes in all)
_HNSW_HEADER = struct.Struct("<iQQQQ")
_HNSW_HEADER_SIZE = 100


def compact_sqlite(db: sqlite3.Connection) -> None:
    """VACUUM an open connection's database and truncate its WAL, so freed pages keep no old rows."""
    db.execute("VACUUM")
    with contextlib.suppress(sqlite3.OperationalError):  # a reader elsewhere: the next checkpoint does it
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def scrub_chroma_log(chroma_dir: str, collection: str) -> int:
    """Blank the metadata of `collection`'s applied write-ahead-log rows, then VACUUM; rows blanked."""
    path = os.path.join(chroma_dir, CHROMA_SQLITE)
    if not os.path.isfile(path):  # mode "http": the server owns its log
        return 0
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.execute("PRAGMA secure_delete=ON")
        row = db.execute(
            "SELECT c.id, m.seq_id FROM collections c JOIN segments s ON s.collection = c.id "
            "JOIN max_seq_id m ON m.segment_id = s.id WHERE c.name = ? AND s.scope = 'METADATA'",
            (collection,),
        ).fetchone()
        if row is None:  # nothing applied yet
            return 0
        collection_id, applied = row
        if isinstance(applied, bytes):  # Chroma < 0.5 stored sequence ids as big-endian bytes
            applied = int.from_bytes(applied, "big")
        blanked = db.execute(
            "UPDATE embeddings_queue SET metadata = NULL "
            "WHERE topic LIKE ? AND seq_id <= ? AND metadata IS NOT NULL",
            (f"%/{collection_id}", int(applied)),
        ).rowcount
        _prune_schema_keys(db, collection_id)
        compact_sqlite(db)
        zero_hnsw_tails(chroma_dir)
    except sqlite3.DatabaseError as exc:  # a Chroma version with another layout: say so, keep serving
        log.warning("could not scrub Chroma's write-ahead log in %s: %s", path, exc)
        return 0
    finally:
        db.close()
    return blanked


def zero_hnsw_tails(chroma_dir: str) -> int:
    """Zero the unused slots of every HNSW segment's data_level0.bin and length.bin; files changed."""
    changed = 0
    for header in Path(chroma_dir).glob("*/header.bin"):
        raw = header.read_bytes()
        if len(raw) != _HNSW_HEADER_SIZE:
            continue
        version, _, capacity, count, slot = _HNSW_HEADER.unpack_from(raw)
        for name, size in (("data_level0.bin", slot), ("length.bin", 4)):
            file = header.parent / name
            # only a file laid out exactly as the header says: anything else is a format we do not know
            if (
                version != 1
                or count > capacity
                or not file.is_file()
                or file.stat().st_size != capacity * size
            ):
                continue
            with file.open("r+b") as fh:
                fh.seek(count * size)
                fh.write(bytes((capacity - count) * size))
            changed += 1
    return changed


def _prune_schema_keys(db: sqlite3.Connection, collection_id: str) -> None:
    """Drop from the collection's stored schema the metadata keys no remaining vector uses."""
    row = db.execute("SELECT schema_str FROM collections WHERE id = ?", (collection_id,)).fetchone()
    if row is None or not row[0]:
        return
    schema = json.loads(row[0])
    keys = schema.get("keys")
    if not isinstance(keys, dict):
        return
    used = {
        k
        for (k,) in db.execute(
            "SELECT DISTINCT m.key FROM embedding_metadata m JOIN embeddings e ON e.id = m.id "
            "JOIN segments s ON s.id = e.segment_id WHERE s.collection = ?",
            (collection_id,),
        )
    }
    kept = {k: v for k, v in keys.items() if k.startswith("#") or k in used}
    if len(kept) < len(keys):
        schema["keys"] = kept
        db.execute("UPDATE collections SET schema_str = ? WHERE id = ?", (json.dumps(schema), collection_id))
