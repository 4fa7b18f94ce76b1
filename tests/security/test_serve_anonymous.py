"""`ragroute serve` without API keys is read-only: anonymous callers may ask but not ingest or delete,
unless the operator passes --allow-anonymous-writes (then only public documents and ids under
'anonymous/'). Real CLI subprocess, real uvicorn on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from ragroute.tools.index import HybridIndex, IndexConfig

from tests.integration.sample_index import free_port, wait_http

pytestmark = pytest.mark.integration


@contextmanager
def serving(index_dir: str, *extra: str) -> Iterator[str]:
    """`ragroute --index DIR serve --port P [extra]` in a subprocess; yields its URL, stops it after."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAGROUTE_API_KEYS": "", "RAGROUTE_API_KEYS_FILE": ""}
    cmd = [sys.executable, "-m", "ragroute.cli", "--index", index_dir, "serve", "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=120, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_without_keys_is_read_only_unless_asked(tmp_path: Any, embedder: Any) -> None:
    path = str(tmp_path / "index")
    HybridIndex(IndexConfig(path=path), embedder=embedder).close()  # an empty index, closed again
    body = {"documents": [{"doc_id": "anonymous/note.md", "text": "# Note\n\nThe kiosk opens at nine."}]}
    with serving(path) as url:
        r = httpx.post(f"{url}/ingest", json=body, timeout=60)
        assert r.status_code == 403 and r.json() == {"detail": "API key of 'anonymous' may not ingest"}
        assert httpx.delete(f"{url}/documents/anonymous/note.md", timeout=60).status_code == 403
    with serving(path, "--allow-anonymous-writes") as url:
        r = httpx.post(f"{url}/ingest", json=body, timeout=120)
        assert r.status_code == 200 and r.json()["added"] == ["anonymous/note.md"], r.text
        elsewhere = {"documents": [{"doc_id": "note.md", "text": "# Note\n\nanything"}]}
        r = httpx.post(f"{url}/ingest", json=elsewhere, timeout=60)
        assert r.status_code == 422 and "may not write doc_id 'note.md'" in r.text
