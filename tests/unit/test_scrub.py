"""The compaction behind hard deletes keeps a real Chroma store working: after its HNSW segment has
persisted (past Chroma's 1000-record sync threshold) and after the log's metadata is blanked, the store
reopens and finds every remaining vector and metadata value."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import numpy as np
from ragroute.tools.index.scrub import scrub_chroma_log
from ragroute.tools.vectorstore import VectorStore

N = 1200  # past hnsw:sync_threshold (1000), so header.bin counts persisted elements


def test_scrub_keeps_a_persisted_hnsw_and_its_metadata(tmp_path: Path) -> None:
    path = str(tmp_path / "chroma")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(N, 16)).astype(np.float32)
    store = VectorStore(path=path)
    ids = [f"v{i}" for i in range(N)]
    store.upsert(ids, vectors.tolist(), [{"note": f"secret-{i:05d}."} for i in range(N)])
    store.delete(ids[:100])
    store.close()
    header = next(Path(path).glob("*/header.bin")).read_bytes()
    assert struct.unpack_from("<iQQQ", header)[3] > 0  # elements were persisted to data_level0.bin
    assert scrub_chroma_log(path, "ragroute") > 0
    db = sqlite3.connect(str(Path(path) / "chroma.sqlite3"))
    assert db.execute("SELECT count(*) FROM embeddings_queue WHERE metadata IS NOT NULL").fetchone() == (0,)
    db.close()
    assert b"secret-00005." not in (Path(path) / "chroma.sqlite3").read_bytes()  # a deleted vector's metadata
    store = VectorStore(path=path)
    try:
        assert store.count() == N - 100
        for i in (100, 640, N - 1):
            assert store.query(vectors[i].tolist(), 1)[0][0] == f"v{i}"
        got = store._col.get(ids=["v700"], include=["metadatas"])
        assert got["metadatas"] == [{"note": "secret-00700."}]
    finally:
        store.close()
