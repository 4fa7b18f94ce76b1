"""The maintained serving path: the graph on the LangGraph Agent Server (`langgraph dev --config
studio/agent_server.json`, offline) with ragroute's API keys through LangGraph custom auth
(ragroute.server.agent_server_auth), called with the official client, langgraph_sdk. A key reads what its
groups and clearance allow whatever context it sends, and sees only its own threads."""

from __future__ import annotations

import json
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
    RUNBOOK_SECRET,
    free_port,
    ingest_sample,
    wait_http,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
READER, OTHER_READER, OPS = "reader-key-0001", "reader-key-0002", "ops-key-00000001"
KEYS = {
    READER: {"user": "alice", "groups": ["eng"]},
    OTHER_READER: {"user": "bob", "groups": ["eng"]},
    OPS: {"user": "carol", "groups": ["ops"], "clearance": 2},
}
FAST = {"reranker": "none"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[str]:
    if not LANGGRAPH.exists():
        pytest.skip("langgraph-cli[inmem] is not installed (pip install -e '.[studio]')")
    index_dir = tmp_path_factory.mktemp("agent-server") / "index"
    ingest_sample(index_dir, embedder).close()  # closed: the server takes the index lock
    port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LANGFUSE_", "LANGSMITH_", "LANGCHAIN_", "RAGROUTE_API_KEYS"))
        },
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAGROUTE_INDEX_DIR": str(index_dir),
        "RAGROUTE_API_KEYS": json.dumps(KEYS),
    }
    workdir = tmp_path_factory.mktemp("agent-server-cwd")  # `langgraph dev` keeps state in ./.langgraph_api
    log = workdir / "langgraph-dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(LANGGRAPH),
                "dev",
                "--config",
                str(ROOT / "studio" / "agent_server.json"),
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


def client(url: str, key: str | None, headers: dict[str, str] | None = None) -> Any:
    """The official client sending `key` as X-API-Key (None: no key, not even one from the environment)."""
    from langgraph_sdk import get_client

    return get_client(url=url, api_key=key, headers=headers)


def seen_docs(output: Any) -> set[str]:
    """Every doc id a run's output names (retrieved, contexts, citations)."""
    assert isinstance(output, dict), output
    ids = [*output.get("retrieved", []), *output.get("contexts", [])]
    return {i.split("::")[0] for i in ids} | {c["doc_id"] for c in output.get("citations", [])}


@pytest.mark.parametrize(
    ("key", "headers"),
    [
        (None, {}),
        ("not-a-known-key", {}),
        (None, {"authorization": "Bearer not-a-known-key"}),
        (None, {"x-auth-scheme": "langsmith"}),  # Studio's scheme: no bypass, disable_studio_auth is set
    ],
)
async def test_a_request_without_a_known_key_is_refused(
    server: str, key: str | None, headers: dict[str, str]
) -> None:
    with pytest.raises(httpx.HTTPStatusError) as err:
        await client(server, key, headers).threads.create()
    assert err.value.response.status_code == 401
    raw = {**headers, **({"x-api-key": key} if key else {})}
    r = httpx.post(f"{server}/runs/wait", json={"assistant_id": "ragroute"}, headers=raw, timeout=30)
    assert r.status_code == 401 and "API key" in r.json()["detail"]


async def test_a_reader_key_answers_a_public_question(server: str) -> None:
    reader = client(server, READER)
    thread = (await reader.threads.create())["thread_id"]
    out = await reader.runs.wait(thread, "ragroute", input={"question": PUBLIC_QUESTION}, context=FAST)
    assert isinstance(out, dict) and "90 days" in out["answer"]
    assert "authentication.md" in {c["doc_id"] for c in out["citations"]}


@pytest.mark.parametrize(
    "widen",
    [
        {"context": {**FAST, "user_groups": ["ops", "sre"], "clearance": 2}},
        {"context": {**FAST, "all_access": True}},
        {"config": {"configurable": {"user_groups": ["ops"], "clearance": 5}}},
    ],
)
async def test_a_reader_key_cannot_widen_its_access_from_the_client(server: str, widen: dict) -> None:
    reader = client(server, READER)
    thread = (await reader.threads.create())["thread_id"]
    out = await reader.runs.wait(thread, "ragroute", input={"question": RUNBOOK_QUESTION}, **widen)
    assert RUNBOOK_DOC not in seen_docs(out) and RUNBOOK_SECRET not in json.dumps(out)
    assert (await reader.threads.get_state(thread))["values"]["question"] == RUNBOOK_QUESTION


async def test_an_invalid_access_context_fails_the_run_without_reading(server: str) -> None:
    reader = client(server, READER)
    with pytest.raises(Exception, match="all_access=True .* cannot be combined") as err:
        await reader.runs.wait(
            None,
            "ragroute",
            input={"question": RUNBOOK_QUESTION},
            context={"user_groups": ["ops"], "all_access": True},
        )
    assert RUNBOOK_SECRET not in str(err.value)


async def test_an_ops_key_reads_the_restricted_runbook(server: str) -> None:
    ops = client(server, OPS)
    out = await ops.runs.wait(None, "ragroute", input={"question": RUNBOOK_QUESTION}, context=FAST)
    assert isinstance(out, dict) and "failover" in out["answer"]
    assert RUNBOOK_DOC in {c["doc_id"] for c in out["citations"]}


async def test_a_user_cannot_read_or_run_on_another_users_thread(server: str) -> None:
    alice, bob = client(server, READER), client(server, OTHER_READER)
    thread = (await alice.threads.create(metadata={"topic": "tokens"}))["thread_id"]
    await alice.runs.wait(thread, "ragroute", input={"question": PUBLIC_QUESTION}, context=FAST)
    assert (await alice.threads.get_state(thread))["values"]["question"] == PUBLIC_QUESTION

    for call in (
        bob.threads.get(thread),
        bob.threads.get_state(thread),
        bob.runs.list(thread),
        bob.runs.wait(thread, "ragroute", input={"question": PUBLIC_QUESTION}, context=FAST),
    ):
        with pytest.raises(httpx.HTTPStatusError) as err:
            await call
        assert err.value.response.status_code == 404
    assert thread not in {t["thread_id"] for t in await bob.threads.search(limit=100)}
    assert thread in {t["thread_id"] for t in await alice.threads.search(limit=100)}


async def test_a_run_may_not_choose_the_servers_index_or_model(server: str) -> None:
    reader = client(server, READER)
    with pytest.raises(httpx.HTTPStatusError) as err:
        await reader.runs.wait(
            None, "ragroute", input={"question": PUBLIC_QUESTION}, context={"index_dir": "/tmp/elsewhere"}
        )
    assert err.value.response.status_code == 403 and "index_dir" in err.value.response.text


def test_the_deployment_image_carries_the_same_auth(tmp_path: Path) -> None:
    """`langgraph build/up` bake the config into the image: the graph and LANGGRAPH_AUTH with our handler."""
    if not LANGGRAPH.exists():
        pytest.skip("langgraph-cli is not installed")
    out = subprocess.run(
        [str(LANGGRAPH), "dockerfile", "-c", str(ROOT / "studio" / "agent_server.json"), "Dockerfile"],
        cwd=tmp_path,
        env={**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    docker = (tmp_path / "Dockerfile").read_text()
    assert '"path": "ragroute.server.agent_server_auth:auth", "disable_studio_auth": true' in docker
    assert '"ragroute": "ragroute.workflow:graph"' in docker


def test_without_keys_every_caller_is_anonymous_and_reads_public_documents_only() -> None:
    from ragroute.context import Context, authenticated_access
    from ragroute.server.agent_server_auth import identity_for, user_of
    from ragroute.server.auth import load_api_keys

    user = user_of(identity_for(None, {}))  # what `authenticate` returns on a keyless server
    assert user["identity"] == "anonymous" and user["permissions"] == []
    access = authenticated_access({"langgraph_auth_user": user})
    assert access == {"user_groups": [], "clearance": 0, "all_access": False}
    assert identity_for(None, load_api_keys(KEYS)) is None  # with keys, no key is refused
    # a user another auth made (a Studio user) carries no access fields: public only, never wider
    assert authenticated_access({"langgraph_auth_user": {"identity": "studio"}}) == {
        "user_groups": None,
        "clearance": None,
        "all_access": False,
    }
    assert authenticated_access({"langgraph_auth_user": None}) is None  # no auth: the context decides
    assert Context(**(authenticated_access({"langgraph_auth_user": user}) or {})).all_access is False
