"""Kill a real ingest with SIGKILL mid-way: the reopened index is consistent and nothing old is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ragroute.tools.index import HybridIndex, IndexConfig

from tests.conftest import TINY_CORPUS, corpus_batch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# The child re-ingests the tiny corpus with changed text (updates: old vectors are replaced) and adds many
# new documents, one transaction each, printing progress so the parent can kill it mid-stream.
CHILD = textwrap.dedent(
    """
    import sys
    from ragroute.tools.index import HybridIndex, IndexConfig
    from ragroute.tools.types import Chunk, Parent
    from tests.conftest import corpus_batch

    index = HybridIndex(IndexConfig(path=sys.argv[1]))
    print("OPEN", flush=True)
    for round_ in range(1000):
        for doc_id, chunks, parents, chash, meta in corpus_batch():
            changed = [Chunk(c.chunk_id, c.doc_id, c.text + f" (revision {round_})", c.metadata, c.parent_id)
                       for c in chunks]
            index.upsert_document(doc_id, changed, parents, content_hash=f"{chash}-{round_}",
                                  doc_metadata=meta)
        new = f"bulk-{round_}"
        text = f"Bulk document {round_} about topic {round_ % 7} and item {round_ * 13 % 101}."
        index.upsert_document(new, [Chunk(f"{new}::c0", new, text, {"title": new})], [],
                              content_hash=new, doc_metadata={"doc_type": "bulk"})
        print("ROUND", round_, flush=True)
    """
)


def distinctive_query(text: str) -> str:
    return " ".join(text.split("\n\n")[0].split()[:8])


def check_consistent_and_complete(path: str, embedder) -> int:
    index = HybridIndex(IndexConfig(path=path), embedder=embedder)
    try:
        sql = index.chunk_ids()
        assert index.vector_chunk_ids() == sql, "Chroma and SQLite disagree"
        assert index.bm25.ids() == sql, "BM25 and SQLite disagree"
        assert index.stats()["vectors"] == len(sql)
        docs = {d["doc_id"] for d in index.list_documents()}
        assert {d for d, *_ in TINY_CORPUS} <= docs
        for doc_id, _title, text, _meta in TINY_CORPUS:
            q = distinctive_query(text)
            assert doc_id in {h.doc_id for h in index.keyword_search(q, k=5)}, (doc_id, "bm25")
            assert doc_id in {h.doc_id for h in index.dense_search(q, k=5)}, (doc_id, "dense")
            assert doc_id in {h.doc_id for h in index.search(q, k=5)}, (doc_id, "hybrid")
        return index.version
    finally:
        index.close()


@pytest.mark.parametrize("rounds_before_kill, extra_delay", [(1, 0.0), (3, 0.137)])
def test_sigkill_mid_ingest_leaves_a_consistent_index(tmp_path, embedder, rounds_before_kill, extra_delay):
    path = str(tmp_path / "index")
    with HybridIndex(IndexConfig(path=path), embedder=embedder) as index:
        index.upsert_documents(corpus_batch())
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, path],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        seen = 0
        deadline = time.monotonic() + 300
        while seen < rounds_before_kill and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line.startswith("ROUND")
        assert seen == rounds_before_kill, "the child ingest did not make progress"
        time.sleep(extra_delay)  # land somewhere inside the next round
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    version = check_consistent_and_complete(path, embedder)
    # every completed round added 9 transactions (8 updates + 1 bulk doc) on top of the initial batch
    assert version >= 1 + 9 * rounds_before_kill
