"""LangGraph Studio's backend for real: `langgraph dev --config studio/langgraph.json` (in-memory API server,
offline, no LangSmith key) serving the ragroute graph; runs are created over its HTTP API with a question
and a context, and the answer, citations, route and thread state are checked. A two-turn conversation
goes through the official client (langgraph_sdk), with the server's own checkpointer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.sample_index import (
    PUBLIC_QUESTION,
    RUNBOOK_DOC,
    RUNBOOK_QUESTION,
    free_port,
    ingest_sample,
    wait_http,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[str]:
    if not LANGGRAPH.exists():
        pytest.skip("langgraph-cli[inmem] is not installed (pip install -e '.[studio]')")
    index_dir = tmp_path_factory.mktemp("studio") / "index"
    ingest_sample(index_dir, embedder).close()  # closed: the dev server takes the index lock
    port = free_port()
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "LANGSMITH_", "LANGCHAIN_"))
        },
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAGROUTE_INDEX_DIR": str(index_dir),
    }
    # run from a scratch folder: `langgraph dev` keeps its in-memory state under ./.langgraph_api
    workdir = tmp_path_factory.mktemp("studio-cwd")
    log = workdir / "langgraph-dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(LANGGRAPH),
                "dev",
                "--config",
                str(ROOT / "studio" / "langgraph.json"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-browser",
                "--no-reload",
            ],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/ok", timeout=120, proc=proc)
        yield f"http://127.0.0.1:{port}"
    except Exception:
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_wait(base: str, thread_id: str, question: str, **body: Any) -> dict:
    r = httpx.post(
        f"{base}/threads/{thread_id}/runs/wait",
        json={"assistant_id": "ragroute", "input": {"question": question}, **body},
        timeout=180,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_graph_and_context_schema_are_registered(studio: str) -> None:
    found = httpx.post(f"{studio}/assistants/search", json={"graph_id": "ragroute"}, timeout=30).json()
    assert [a["graph_id"] for a in found] == ["ragroute"]
    schemas = httpx.get(f"{studio}/assistants/{found[0]['assistant_id']}/schemas", timeout=30).json()
    props = schemas["context_schema"]["properties"]
    assert {"llm", "reranker", "filters", "user_groups", "clearance", "route"} <= set(props)
    assert set(schemas["input_schema"]["properties"]) == {"question", "filters"}
    assert "citations" in schemas["output_schema"]["properties"]
    graph = httpx.get(f"{studio}/assistants/{found[0]['assistant_id']}/graph", timeout=30).json()
    nodes = {n["id"] for n in graph["nodes"]}
    assert {"classify", "retrieve", "rerank", "prune", "generate", "verify", "finalize"} <= nodes


def test_runs_with_context_answer_with_citations_and_keep_thread_state(studio: str) -> None:
    thread = httpx.post(f"{studio}/threads", json={}, timeout=30).json()["thread_id"]
    ops = run_wait(
        studio, thread, RUNBOOK_QUESTION, context={"user_groups": ["ops"], "clearance": 2, "reranker": "none"}
    )
    assert ops["route"] == "simple" and not ops["abstained"]
    assert "failover" in ops["answer"]
    assert RUNBOOK_DOC in {c["doc_id"] for c in ops["citations"]}

    # same thread, a caller without the ops group: the restricted runbook is filtered out
    eng = run_wait(studio, thread, RUNBOOK_QUESTION, context={"user_groups": ["eng"], "clearance": 0})
    assert RUNBOOK_DOC not in {cid.split("::")[0] for cid in eng["retrieved"] + eng["contexts"]}
    state = httpx.get(f"{studio}/threads/{thread}/state", timeout=30).json()
    assert state["values"]["question"] == RUNBOOK_QUESTION and state["values"]["answer"] == eng["answer"]
    history = httpx.post(f"{studio}/threads/{thread}/history", json={"limit": 100}, timeout=30).json()
    assert len({h["checkpoint"]["checkpoint_id"] for h in history}) > 10  # checkpoints of both runs


def test_configurable_works_like_context_and_route_can_be_forced(studio: str) -> None:
    thread = httpx.post(f"{studio}/threads", json={}, timeout=30).json()["thread_id"]
    out = run_wait(
        studio,
        thread,
        PUBLIC_QUESTION,
        config={
            "configurable": {"route": "expand", "reranker": "none", "filters": {"doc_type": "technical"}}
        },
    )
    assert out["route"] == "expand"
    assert "90 days" in out["answer"] and "authentication.md" in {c["doc_id"] for c in out["citations"]}


async def test_a_two_turn_conversation_through_the_sdk_condenses_the_follow_up(studio: str) -> None:
    """The second question of a thread is read with the first: "and what about version 2.9.1?"."""
    from langgraph_sdk import get_client

    client = get_client(url=studio)
    thread = (await client.threads.create())["thread_id"]
    context = {"reranker": "none"}
    first = await client.runs.wait(
        thread,
        "ragroute",
        input={"question": "What is the default task timeout in version 2.10.0?"},
        context=context,
    )
    assert isinstance(first, dict) and first["citations"][0]["doc_id"] == "release-notes-2.10.0.md"
    follow = await client.runs.wait(
        thread, "ragroute", input={"question": "And what about version 2.9.1?"}, context=context
    )
    assert isinstance(follow, dict) and follow["citations"][0]["doc_id"] == "release-notes-2.9.1.md"
    assert "1 hour" in follow["answer"]
    values = (await client.threads.get_state(thread))["values"]
    assert isinstance(values, dict)
    assert values["asked"] == "And what about version 2.9.1?"
    assert values["question"] == "What is the default task timeout in version 2.9.1?"
    assert [m["role"] for m in values["history"]] == ["user", "assistant", "user", "assistant"]
    assert values["trace"][0] == {
        "node": "condense",
        "asked": "And what about version 2.9.1?",
        "standalone": "What is the default task timeout in version 2.9.1?",
        "reason": "starts with a connective",
    }


def test_build_config_resolves_dependencies_against_the_config_folder(tmp_path: Path) -> None:
    """`langgraph build/up` read `dependencies` relative to studio/, so ".." must be the repo root."""
    if not LANGGRAPH.exists():
        pytest.skip("langgraph-cli is not installed")
    out = subprocess.run(
        [
            str(LANGGRAPH),
            "dockerfile",
            "-c",
            str(ROOT / "studio" / "langgraph.json"),
            str(tmp_path / "Dockerfile"),
        ],
        cwd=tmp_path,
        env={**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"{ROOT.name}={ROOT}" in out.stdout + out.stderr  # the repo root, named after its folder
    assert '"ragroute": "ragroute.workflow:graph"' in (tmp_path / "Dockerfile").read_text()
