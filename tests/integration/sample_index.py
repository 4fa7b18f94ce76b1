"""Shared by the server, Studio and Langfuse tests: the bundled sample corpus ingested into a fresh index,
and small helpers for starting local servers on a free loopback port and for checking that a response or
a trace carries no LangGraph internals."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

# A question only the restricted incident runbook (access_groups [ops, sre], security_level 2) answers.
RUNBOOK_QUESTION = "How do I fail over the scheduler when the heartbeat is stale?"
RUNBOOK_DOC = "incident-runbook.md"
RUNBOOK_SECRET = "orbit_breakglass"  # a string that only occurs in the runbook
PUBLIC_QUESTION = "What is the maximum lifetime of an API token?"


def ingest_sample(path: Path, embedder: Any = None) -> Any:
    """Open a HybridIndex at `path` and ingest the sample corpus into it; returns the open index."""
    from ragroute.tools.index import HybridIndex, IndexConfig
    from ragroute.tools.ingest import ingest_paths
    from ragroute.tools.loaders import sample_corpus_dir

    index = HybridIndex(IndexConfig(path=str(path)), embedder=embedder)
    report = ingest_paths(index, [str(sample_corpus_dir())], progress=False)
    assert not report.failed, report.failed
    return index


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, proc: Any = None) -> None:
    """Poll `url` until it answers 200 (or fail with the reason)."""
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            r = httpx.get(url, timeout=2.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} not up after {timeout}s: {last}")


# LangGraph bookkeeping that must never reach a caller or a trace: control objects (Overwrite), Pregel
# task paths and triggers, checkpoint namespaces, LangChain's step tags
LANGGRAPH_INTERNALS = re.compile(
    r"__overwrite__|__pregel|checkpoint_ns|langgraph_triggers|langgraph_path|branch:to:|(graph|seq):step:\d"
)
PUBLIC_CHUNK_TEXT = "A token is shown once at creation"  # authentication.md's chunk text, never in an answer


def assert_no_internals(text: str) -> None:
    """`text` (a response body, a span's attributes) names no LangGraph internals and no hit's full text."""
    found = LANGGRAPH_INTERNALS.search(text)
    assert found is None, (
        f"LangGraph internal {found.group(0)!r} in {text[max(0, found.start() - 200) : found.end() + 50]!r}"
    )
    assert PUBLIC_CHUNK_TEXT not in text, "a hit's chunk text was sent"
