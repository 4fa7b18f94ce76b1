"""Milvus index consistency with real processes on a real `milvus-lite server`: a `ragroute ingest` killed
with SIGKILL mid-way leaves every document whole (old or new revision, never a mix) and a later ingest
completes the run; two processes writing the same and different documents at once leave no corrupt
document (each document's chunks all from one write, the registry agreeing with them).

`milvus_lite_server` and `child_env` are shared with test_milvus_replicas.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sample_index import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # minutes on 2 cores: real processes

ROOT = Path(__file__).resolve().parents[2]
RAGROUTE = str(Path(sys.executable).with_name("ragroute"))


def child_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a child process: offline models, our checkout importable, Milvus state under tmp."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "RAGROUTE_STATE_DIR": str(state_dir),
        **extra,
    }


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float) -> None:
    """Until something accepts TCP connections on 127.0.0.1:`port` (fails if `proc` exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"milvus-lite server exited early with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"milvus-lite server not listening on {port} after {timeout}s")


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Signal a child we started (and its own process group), then kill it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@contextlib.contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[str]:
    """A real `milvus-lite server` on a free loopback port; yields "127.0.0.1:PORT"; stopped afterwards."""
    exe = shutil.which("milvus-lite", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the milvus-lite CLI is not installed (extra: milvus)")
    port = free_port()
    log = open(data_dir.with_suffix(".log"), "wb")  # noqa: SIM115 - closed below, after the server
    proc = subprocess.Popen(
        [exe, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stop() reaches whatever it started
    )
    try:
        wait_port(port, proc, 120)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One milvus-lite server for the module (each test uses its own index name on it)."""
    with milvus_lite_server(tmp_path_factory.mktemp("milvus") / "data") as where:
        yield where


def open_url(url: str, state_dir: Path, embedder: Any) -> Any:
    """A HybridIndex on the Milvus `url` (its local state folder under `state_dir`)."""
    from ragroute.tools.index import open_index

    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAGROUTE_STATE_DIR", str(state_dir))
        return open_index(url, embedder=embedder)


def whole_documents(index: Any, prefix: str = "") -> dict[str, str]:
    """Each live document's write marker (of documents whose id starts with `prefix`), after checking every
    chunk of it carries that one marker (the one its registry metadata names), the registry's chunk count
    is right and searches agree."""
    rows = {d["doc_id"]: d for d in index.list_documents() if d["doc_id"].startswith(prefix)}
    chunks: dict[str, list[Any]] = {}
    for cid in index.chunk_ids():
        chunk = index.get_chunk(cid)
        if chunk.doc_id.startswith(prefix):
            chunks.setdefault(chunk.doc_id, []).append(chunk)
    assert set(chunks) == set(rows), "registry and chunks name different documents"
    markers = {}
    for doc_id, row in rows.items():
        marker = str(row["metadata"]["marker"])
        assert len(chunks[doc_id]) == row["n_chunks"], doc_id
        for chunk in chunks[doc_id]:
            assert f"mark {marker} " in chunk.text, (doc_id, marker, chunk.text[:80])
            assert str(chunk.metadata["marker"]) == marker, (doc_id, chunk.metadata)
        markers[doc_id] = marker
    for hits in (index.search("mark", k=200), index.keyword_search("mark", k=200)):
        for hit in hits:
            if hit.doc_id.startswith(prefix):
                assert f"mark {markers[hit.doc_id]} " in hit.text, (hit.doc_id, hit.text[:80])
    live = index.chunk_ids()
    assert {v for v in index.vector_chunk_ids() if not v.startswith("<stray:")} == live
    return markers


def body(doc_id: str, marker: str, parts: int) -> str:
    """Markdown whose every section (one chunk each) names the document and the write's marker."""
    sections = [
        f"## Part {j}\n\nThis is part {j} of {doc_id}, mark {marker} . "
        + " ".join(f"word{(j * 7 + w) % 50}" for w in range(30))
        for j in range(parts)
    ]
    return f"# Record {doc_id}\n\n" + "\n\n".join(sections) + "\n"


def write_folder(folder: Path, names: list[str], marker: str, parts: int) -> None:
    """Markdown files with the marker in their front matter too (so in the documents' metadata)."""
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text(f"---\nmarker: {marker}\n---\n{body(name, marker, parts)}")


def cli(url: str, state: Path, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run `ragroute --index URL ARGS --json` to completion; its JSON output."""
    out = subprocess.run(
        [RAGROUTE, "--index", url, *args, "--json"],
        cwd=ROOT,
        env=child_env(state),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_sigkill_mid_ingest_leaves_whole_documents_and_a_rerun_completes(
    milvus_server: str, tmp_path: Path, embedder: Any
) -> None:
    from ragroute.tools.ingest import ingest_paths

    url, state, folder = f"milvus://{milvus_server}/killed", tmp_path / "state", tmp_path / "big"
    # 90 documents: two batches of the CLI's ingest (64 a batch); ids are the paths under the folder
    old = [f"doc{i:03d}.md" for i in range(70)]
    new = [f"new{i:03d}.md" for i in range(20)]
    write_folder(folder, old, "r1", parts=2)
    index = open_url(url, state, embedder)
    try:
        assert len(ingest_paths(index, [str(folder)], progress=False).added) == len(old)
        assert set(whole_documents(index).values()) == {"r1"}
        write_folder(folder, old, "r2", parts=3)  # every document changes, and gains a chunk
        write_folder(folder, new, "r2", parts=3)
        before = index.version
        proc = subprocess.Popen(
            [RAGROUTE, "--index", url, "ingest", str(folder), "--no-progress"],
            cwd=ROOT,
            env=child_env(state),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 400
            while index.version == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, "the ingest finished before it could be killed"
            assert index.version != before, "the ingest committed nothing in time"
            committed = index.version
            # the first batch is committed; kill once the next one's rows are written but not committed
            while (
                index.version == committed
                and proc.poll() is None
                and not any(v.startswith("<stray:") for v in index.vector_chunk_ids())
            ):
                time.sleep(0.05)
            stop(proc, signal.SIGKILL)
        finally:
            stop(proc, signal.SIGKILL)
        markers = whole_documents(index)
        done = {d for d, m in markers.items() if m == "r2"}
        assert done and len(done) < len(old) + len(new), "the kill did not land mid-run"
        assert set(old) <= set(markers)  # nothing acknowledged before the run was lost
        # rows of the killed batch (if it got that far): written, never committed, so invisible above
        strays = {v for v in index.vector_chunk_ids() if v.startswith("<stray:")}
        print(f"killed with {len(done)} documents committed and {len(strays)} uncommitted rows")

        report = cli(url, state, "ingest", str(folder), "--no-progress")
        assert set(report["unchanged"]) == done
        assert set(report["updated"]) | set(report["added"]) == set(old + new) - done
        assert whole_documents(index) == {d: "r2" for d in old + new}
        assert index.backend.reconcile(min_age_s=0)["removed"] >= len(strays)
        assert index.vector_chunk_ids() == index.chunk_ids()
    finally:
        index.close()


WRITER = textwrap.dedent(
    """
    import sys
    from ragroute.tools.index import open_index
    from ragroute.tools.ingest import ingest_documents
    from ragroute.tools.types import Document
    from tests.integration.test_milvus_consistency import body

    url, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parts = 2 if name == "A" else 3  # a mix of two writes would show in the chunk count too
    index = open_index(url)
    for r in range(rounds):
        docs = [f"shared{i}" for i in range(8)] + [f"own{name}{i}" for i in range(4)]
        mark = f"{name}{r}"
        batch = [
            Document(doc_id=d, text=body(d, mark, parts), format="markdown", metadata={"marker": mark})
            for d in docs
        ]
        report = ingest_documents(index, batch, progress=False, batch_size=3, replace_source=True)
        assert report.ok and not report.unchanged, report.to_dict()
        print("ROUND", r, flush=True)
    index.close()
    """
)


def test_two_writers_at_once_leave_no_corrupt_document(
    milvus_server: str, tmp_path: Path, embedder: Any
) -> None:
    url, state, rounds = f"milvus://{milvus_server}/writers", tmp_path / "state", 4
    index = open_url(url, state, embedder)  # creates the collections before the writers race
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, name, str(rounds)],
            cwd=ROOT,
            env=child_env(state),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for name in ("A", "B")
    ]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-3000:]
            assert out.count("ROUND") == rounds
        markers = whole_documents(index)
        last = {f"A{rounds - 1}", f"B{rounds - 1}"}
        assert {markers[f"shared{i}"] for i in range(8)} <= last  # the last committed write wins
        assert {markers[f"own{w}{i}"] for w in "AB" for i in range(4)} == last
        # whole: a document has the winner's chunk count (A writes fewer sections than B)
        counts = {d["doc_id"]: d["n_chunks"] for d in index.list_documents()}
        assert counts["ownA0"] < counts["ownB0"]
        for doc_id, marker in markers.items():
            assert counts[doc_id] == counts[f"own{marker[0]}0"], doc_id
            assert str(index.document_metadata(doc_id)["marker"]) == marker
        index.backend.reconcile(min_age_s=0)  # the losers' rows were never visible; now they are gone
        assert index.vector_chunk_ids() == index.chunk_ids()
        assert whole_documents(index) == markers
    finally:
        for p in procs:
            stop(p, signal.SIGKILL)
        index.close()
