"""Commands that embed nothing answer without loading the embedding model: `ragroute stats`, delete,
restore, purge, --help and argument errors run in a fresh interpreter that never imports torch or
sentence-transformers (the model is 7-11 s of a cold start), nor chromadb (about a second: only dense
reads and writes, hard deletes and purges that forget something open it), within a wall-clock bound."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from ragroute.cli import main

HEAVY = ("torch", "sentence_transformers", "transformers", "chromadb")
BOUND_S = 3.0  # about 0.3 s on a quiet machine; loose for a loaded 2-core one (with Chroma it took 1.3 s)

# runs the CLI in-process in a child interpreter, then reports what that imported
PROBE = f"""
import json, sys
from ragroute.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:  # --help and argparse errors
    rc = exc.code
print(json.dumps({{"rc": rc, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def probe(*argv: str) -> tuple[dict[str, Any], str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120, check=False
    )
    seconds = time.perf_counter() - start
    assert done.stdout.strip(), f"rc={done.returncode}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr, seconds


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("speed")
    doc = path / "note.md"
    doc.write_text("# Note\n\nThe blue widget ships in March.\n")
    assert main(["--index", str(path / "idx"), "ingest", str(doc), "--json"]) == 0
    return str(path / "idx")


@pytest.mark.parametrize(
    ("argv", "rc"),
    [
        (["--help"], 0),
        (["stats"], 0),
        (["stats", "--json"], 0),
        (["search", "x", "--filter", '{"version": {"$regex": "2"}}'], 2),
        (["search", "x", "--filter", "{not json"], 2),
        (["ask", "x", "--llm", "nope:model"], 2),
        (["delete", "missing.md"], 1),
        (["restore", "missing.md"], 1),
        (["purge"], 0),
        (["no-such-command"], 2),
    ],
)
def test_commands_that_embed_nothing_never_load_the_model(index_dir: str, argv: list[str], rc: int) -> None:
    found, err, seconds = probe("--index", index_dir, *argv)
    assert found["rc"] == rc, err
    assert found["heavy"] == [], f"{argv} imported {found['heavy']}"
    assert seconds < BOUND_S, f"{argv} took {seconds:.1f}s"
    if rc == 2 and argv[0] != "no-such-command":
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_index_may_follow_the_subcommand(index_dir: str) -> None:
    found, err, _ = probe("stats", "--index", index_dir, "--json")
    assert found["rc"] == 0 and found["heavy"] == [], err


def test_soft_delete_and_stats_leave_chroma_closed(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A soft delete in a process without Chroma leaves its vectors to the next opening's reconcile."""
    path = tmp_path_factory.mktemp("soft")
    docs = [("keep.md", "The blue widget ships in March."), ("gone.md", "Red gadgets ship in May.")]
    for name, text in docs:
        (path / name).write_text(f"# {name}\n\n{text}\n")
    idx = str(path / "idx")
    assert main(["--index", idx, "ingest", str(path / "keep.md"), str(path / "gone.md"), "--json"]) == 0
    for argv in (["delete", "gone.md"], ["stats", "--json"]):
        found, err, _ = probe("--index", idx, *argv)
        assert found == {"rc": 0, "heavy": []}, err
    found, err, _ = probe("--index", idx, "search", "red gadgets", "--json")
    assert found["rc"] == 0 and "chromadb" in found["heavy"], err
    from ragroute.tools.index import HybridIndex, IndexConfig

    index = HybridIndex(IndexConfig(path=idx))
    try:
        assert index.vector_chunk_ids() == index.chunk_ids() and index.stats()["vectors"] == 1
    finally:
        index.close()


def test_search_does_load_the_model(index_dir: str) -> None:
    """The probe sees the model and Chroma when a command embeds (so the tests above can fail)."""
    found, err, _ = probe("--index", index_dir, "search", "blue widget", "--json")
    assert found["rc"] == 0, err
    assert "torch" in found["heavy"] and "chromadb" in found["heavy"]
