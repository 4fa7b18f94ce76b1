"""Concurrent ingests and queries on one index: threads in one process, and two processes writing to the
same index directory. Afterwards Chroma, SQLite and BM25 hold the same chunk ids, every acknowledged
document is searchable, and the only error a writer may see is a clear RagrouteError (the index lock),
after which retrying succeeds."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from ragroute.tools.errors import IndexError_, RagrouteError
from ragroute.tools.index import HybridIndex, IndexConfig
from ragroute.tools.ingest import ingest_documents
from ragroute.tools.types import AccessScope, Document

pytestmark = pytest.mark.integration

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def doc(writer: str, i: int, version: int = 0) -> Document:
    """A document with a unique keyword (`zq<writer>x<i>`) so it can be found exactly."""
    rng = random.Random(f"{writer}-{i}-{version}")
    body = " ".join(rng.choice(WORDS) for _ in range(40))
    text = f"Record zq{writer}x{i} revision {version}. {body}.\n\nSecond part about {rng.choice(WORDS)}."
    meta = {"access_groups": ["ops"], "security_level": 1} if i % 5 == 0 else {}
    return Document(
        doc_id=f"{writer}-{i}", text=text, title=f"Record {writer} {i}", format="text", metadata=meta
    )


def assert_consistent(index: HybridIndex) -> None:
    """Chroma ids == SQLite chunk ids == BM25 ids, and the documents table matches the chunks."""
    sqlite_ids = index.chunk_ids()
    assert index.vector_chunk_ids() == sqlite_ids
    assert index.bm25.ids() == sqlite_ids
    docs = {d["doc_id"]: d["n_chunks"] for d in index.list_documents()}
    per_doc: dict[str, int] = {}
    for cid in sqlite_ids:
        chunk = index.get_chunk(cid)
        assert chunk is not None
        per_doc[chunk.doc_id] = per_doc.get(chunk.doc_id, 0) + 1
    assert per_doc == docs


def assert_searchable(index: HybridIndex, acked: dict[str, int]) -> None:
    """Every acknowledged document is found by its unique keyword, at its last acknowledged revision."""
    for doc_id, version in acked.items():
        writer, i = doc_id.split("-")
        hits = index.keyword_search(f"zq{writer}x{i}", 3)
        assert hits and hits[0].doc_id == doc_id, doc_id
        assert f"revision {version}." in hits[0].text, (doc_id, hits[0].text[:60])
        dense = index.search(f"Record zq{writer}x{i}", 5, filters={"doc_id": doc_id})
        assert dense and dense[0].doc_id == doc_id


def test_threads_ingest_update_delete_and_query_one_index(tmp_path, embedder):
    index = HybridIndex(IndexConfig(path=str(tmp_path / "ix")), embedder=embedder)
    errors: list[BaseException] = []
    acked: dict[str, int] = {}
    deleted: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    queries = {"n": 0}

    def writer(name: str) -> None:
        try:
            for i in range(6):
                report = ingest_documents(index, [doc(name, i)], progress=False)
                assert report.ok and report.added == [f"{name}-{i}"], report.to_dict()
                with lock:
                    acked[f"{name}-{i}"] = 0
            # update one and delete one of our own, concurrently with the other writers
            report = ingest_documents(index, [doc(name, 1, version=1)], progress=False)
            assert report.updated == [f"{name}-1"], report.to_dict()
            with lock:
                acked[f"{name}-1"] = 1
            assert index.delete_document(f"{name}-2")
            with lock:
                acked.pop(f"{name}-2")
                deleted.add(f"{name}-2")
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        scope = AccessScope(groups=[], clearance=0)
        try:
            while not stop.is_set():
                q = f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
                hits = index.search(q, 5, access=scope)
                assert all(not h.metadata.get("access_groups") for h in hits)
                index.keyword_search(q, 5)
                asyncio.run(index.asearch(q, 5, filters={"security_level": {"$lte": 1}}))
                queries["n"] += 1
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
    readers = [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    try:
        for t in readers + writers:
            t.start()
        for t in writers:
            t.join(timeout=300)
        stop.set()
        for t in readers:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in writers + readers), "a thread hung"
        assert not errors, errors
        assert queries["n"] > 0 and len(acked) == 3 * 5
        assert_consistent(index)
        assert_searchable(index, acked)
        assert not {d["doc_id"] for d in index.list_documents()} & deleted
    finally:
        index.close()
    # and the same after a reopen (BM25 snapshot, Chroma and SQLite on disk agree)
    with HybridIndex(IndexConfig(path=str(tmp_path / "ix")), embedder=embedder) as reopened:
        assert_consistent(reopened)
        assert_searchable(reopened, acked)


WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, sys.argv[4])
    from ragroute.tools.errors import IndexError_
    from tests.integration.test_concurrency import doc
    from ragroute.tools.index import HybridIndex, IndexConfig
    from ragroute.tools.ingest import ingest_documents

    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    acked, lock_errors = [], []
    for i in range(n):
        while True:  # hold the index only per batch, as a CLI ingest would; retry on the lock
            try:
                index = HybridIndex(IndexConfig(path=path, lock_timeout_s=0.5))
            except IndexError_ as exc:
                lock_errors.append(str(exc))
                time.sleep(0.05)
                continue
            break
        try:
            report = ingest_documents(index, [doc(name, i)], progress=False)
            assert report.ok, report.to_dict()
        finally:
            index.close()
        acked.append(f"{name}-{i}")
    print(json.dumps({"acked": acked, "lock_errors": lock_errors}))
    """
)


def test_two_processes_ingest_into_one_index_dir(tmp_path, embedder):
    path = str(tmp_path / "shared")
    HybridIndex(IndexConfig(path=path), embedder=embedder).close()  # created once, empty
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": root}
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), path, name, "4", root],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("pa", "pb")
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=400)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    acked = {d: 0 for r in results for d in r["acked"]}
    assert len(acked) == 8, results
    lock_errors = [e for r in results for e in r["lock_errors"]]
    # the only failure a writer saw is the lock, and it names the holder and what to do
    assert all("is locked by another process" in e for e in lock_errors), lock_errors
    with HybridIndex(IndexConfig(path=path), embedder=embedder) as index:
        assert_consistent(index)
        assert_searchable(index, acked)
    assert time.monotonic() - started < 400


def test_a_second_open_in_another_process_is_a_clear_error(tmp_path, embedder):
    path = str(tmp_path / "held")
    with HybridIndex(IndexConfig(path=path), embedder=embedder):
        code = textwrap.dedent(
            f"""
            import os, sys
            os.environ["HF_HUB_OFFLINE"] = "1"
            from ragroute.tools.errors import IndexError_, RagrouteError
            from ragroute.tools.index import HybridIndex, IndexConfig
            try:
                HybridIndex(IndexConfig(path={path!r}, lock_timeout_s=0.3))
            except IndexError_ as exc:
                assert isinstance(exc, RagrouteError)
                print("LOCKED", exc)
                sys.exit(0)
            sys.exit(3)
            """
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=200)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.startswith("LOCKED") and str(os.getpid()) in proc.stdout
    assert issubclass(IndexError_, RagrouteError)
