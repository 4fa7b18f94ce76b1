"""Conversation threads through the Python API on a real index of the bundled sample corpus (issue 14):
a follow-up is condensed with the thread's earlier question and retrieves the right document, threads do
not share history, and the thread lives in `<index_dir>/threads.sqlite`, so another process continues it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from ragroute.api import aask, ask
from ragroute.runtime.providers import Providers
from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.index import HybridIndex, IndexConfig
from ragroute.workflow import graph

from tests.integration.sample_index import ingest_sample

FIRST = "What is the default task timeout in version 2.10.0?"
FOLLOW_UP = "And what about version 2.9.1?"
STANDALONE = "What is the default task timeout in version 2.9.1?"
OLD_NOTES, NEW_NOTES = "release-notes-2.9.1.md", "release-notes-2.10.0.md"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    """A closed index of the sample corpus (a test that needs its own copy copies the folder)."""
    path = tmp_path_factory.mktemp("conversation") / "index"
    ingest_sample(path, embedder).close()
    return path


def thread_state(index_dir: Path, thread_id: str) -> dict[str, Any]:
    """The thread's checkpointed state, read straight from the threads file."""
    with SqliteSaver.from_conn_string(str(index_dir / "threads.sqlite")) as saver:
        return (
            graph.copy(update={"checkpointer": saver})
            .get_state({"configurable": {"thread_id": thread_id}})
            .values
        )


def cited(out: dict[str, Any]) -> list[str]:
    return [c["doc_id"] for c in out["citations"]]


def test_a_follow_up_is_condensed_with_the_threads_question_and_answered_from_the_right_document(
    sample_dir: Path,
) -> None:
    first = ask(FIRST, thread_id="chat-1", index_dir=str(sample_dir), all_access=True)
    assert cited(first)[0] == NEW_NOTES and "2 hours" in first["answer"]
    follow = ask(FOLLOW_UP, thread_id="chat-1", index_dir=str(sample_dir), all_access=True)
    assert cited(follow)[0] == OLD_NOTES and "1 hour" in follow["answer"]
    assert follow["cache"]["response"] == "off"  # a thread's answer depends on the thread

    state = thread_state(sample_dir, "chat-1")
    assert state["question"] == STANDALONE and state["asked"] == FOLLOW_UP
    assert [(m["role"], m["content"]) for m in state["history"]] == [
        ("user", FIRST),
        ("assistant", first["answer"]),
        ("user", FOLLOW_UP),
        ("assistant", follow["answer"]),
    ]
    assert state["history"][2]["standalone"] == STANDALONE and state["history"][3]["doc_ids"] == cited(follow)
    assert [t["node"] for t in state["trace"]][:2] == ["condense", "classify"]

    # the same words without the thread are not condensed: nothing says which timeout is meant
    alone = ask(FOLLOW_UP, index_dir=str(sample_dir), all_access=True)
    assert OLD_NOTES not in cited(alone)[:1]


async def test_a_new_thread_does_not_see_another_threads_history(sample_dir: Path) -> None:
    await aask(FIRST, thread_id="alice-1", index_dir=str(sample_dir), all_access=True)
    other = await aask(FOLLOW_UP, thread_id="bob-1", index_dir=str(sample_dir), all_access=True)
    assert OLD_NOTES not in cited(other)[:1]
    state = thread_state(sample_dir, "bob-1")
    assert state["question"] == FOLLOW_UP and "asked" not in state  # bob's first turn: nothing condensed
    assert [m["content"] for m in state["history"] if m["role"] == "user"] == [FOLLOW_UP]


def test_the_thread_file_is_beside_the_index_and_another_process_continues_the_thread(
    sample_dir: Path, tmp_path: Path, embedder: Any
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(sample_dir, index_dir)
    index = HybridIndex(IndexConfig(path=str(index_dir)), embedder=embedder)
    try:  # the first turn with a bound index: its thread goes beside that index's files
        first = ask(FIRST, thread_id="t", providers=Providers(index=index), all_access=True)
    finally:
        index.close()  # the other process takes the index lock
    assert cited(first)[0] == NEW_NOTES and (index_dir / "threads.sqlite").is_file()
    code = (
        "import json, sys; from ragroute import ask; "
        "print(json.dumps(ask(sys.argv[1], thread_id='t', index_dir=sys.argv[2], all_access=True)))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, FOLLOW_UP, str(index_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    follow = json.loads(done.stdout.strip().splitlines()[-1])
    assert cited(follow)[0] == OLD_NOTES and "1 hour" in follow["answer"]
    assert len(thread_state(index_dir, "t")["history"]) == 4


def test_bad_thread_ids_and_a_missing_index_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="thread_id must be a non-empty string"):
        ask(FIRST, thread_id=" ", index_dir=str(tmp_path))
    with pytest.raises(InputError, match="at most 200"):
        ask(FIRST, thread_id="x" * 201, index_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        ask(FIRST, thread_id="t", index_dir=str(tmp_path / "missing"))


def test_the_cli_continues_a_thread(sample_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ragroute.cli import main

    def cli_ask(question: str) -> dict[str, Any]:
        code = main(
            ["--index", str(sample_dir), "ask", question, "--thread", "cli-1", "--all-access", "--json"]
        )
        out = capsys.readouterr().out
        assert code == 0, out
        return json.loads(out)

    assert cited(cli_ask(FIRST))[0] == NEW_NOTES
    assert cited(cli_ask(FOLLOW_UP))[0] == OLD_NOTES
