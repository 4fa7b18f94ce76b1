"""HybridIndex against a real `chroma run` server (chroma_mode="http"), started and torn down here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ragroute.tools.index import HybridIndex, IndexConfig
from ragroute.tools.types import AccessScope

from tests.conftest import corpus_batch

pytestmark = pytest.mark.integration

CHROMA = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chroma exited early with code {proc.returncode}")
        try:
            if httpx.get(f"http://localhost:{port}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"chroma server on port {port} did not answer within {timeout}s")


@pytest.fixture
def chroma_server(tmp_path):
    if not os.path.exists(CHROMA):
        pytest.skip("the `chroma` CLI is not installed (pip install chromadb puts it next to python)")
    port = free_port()
    log = open(tmp_path / "chroma.log", "w")
    proc = subprocess.Popen(
        [CHROMA, "run", "--path", str(tmp_path / "server-data"), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        wait_until_up(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_index_over_http(chroma_server, tmp_path, embedder):
    cfg = dict(
        path=str(tmp_path / "docstore"), chroma_mode="http", chroma_port=chroma_server, collection="it-http"
    )
    index = HybridIndex(IndexConfig(**cfg), embedder=embedder)
    try:
        assert index.search("anything") == []
        index.upsert_documents(corpus_batch())
        stats = index.stats()
        assert stats["chroma_mode"] == "http" and stats["vectors"] == stats["chunks"] > 0
        hits = index.search(
            "what does error E1042 mean", k=3, access=AccessScope(groups=["ops"], clearance=1)
        )
        assert hits[0].doc_id == "incident"
        public = index.dense_search("board acquisition", k=20, access=AccessScope(groups=[], clearance=0))
        assert "secret" not in {h.doc_id for h in public}
        filtered = index.dense_search("guide", k=20, filters={"version": {"$gte": "2.10.0"}})
        assert {h.doc_id for h in filtered} == {"auth", "rrf", "incident", "deploy-de"}
        assert index.delete_document("cats")
        assert index.vector_chunk_ids() == index.chunk_ids()
    finally:
        index.close()
    # vectors live on the server: a reopened index finds them without re-embedding
    again = HybridIndex(IndexConfig(**cfg), embedder=embedder)
    try:
        assert again.reconcile() == {"removed": 0, "reembedded": 0}
        assert again.search("reciprocal rank fusion", k=1)[0].doc_id == "rrf"
    finally:
        again.close()


def test_unreachable_server_is_a_clear_error(tmp_path, embedder):
    from ragroute.tools.errors import ProviderError

    with pytest.raises(ProviderError, match="chroma"):
        HybridIndex(
            IndexConfig(path=str(tmp_path / "x"), chroma_mode="http", chroma_port=free_port()),
            embedder=embedder,
        )
