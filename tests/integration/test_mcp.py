"""`ragroute mcp` for real, driven by the official MCP SDK's own clients: `ragroute mcp` over stdio as a
subprocess, streamable HTTP on a loopback port (in this process, and `ragroute mcp --http` as a
subprocess), and the tools loaded into a LangGraph agent through langchain-mcp-adapters. The caller's
access comes from the server's key configuration; no tool argument can reach the restricted runbook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from ragroute.cli import main
from ragroute.mcp_server.app import IDENTITY_KEY, ApiKeyGuard, build_server, http_app
from ragroute.server.auth import ANONYMOUS, load_api_keys
from ragroute.server.state import IndexHolder
from ragroute.tools.loaders import sample_corpus_dir

from tests.integration.sample_index import (
    PUBLIC_QUESTION,
    RUNBOOK_DOC,
    RUNBOOK_QUESTION,
    RUNBOOK_SECRET,
    free_port,
    ingest_sample,
)

pytestmark = pytest.mark.integration

READER = "reader-key-0001"  # eng, clearance 1: not a member of the runbook's groups
OPS = "ops-key-0000002"  # ops, clearance 2: may read the runbook
KEYS = {
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    OPS: {"user": "olga", "groups": ["ops"], "clearance": 2},
}
# filters a caller might try to reach the runbook with: they can only narrow
WIDENING_FILTERS = [
    {"access_groups": {"$in": ["ops", "sre"]}},
    {"$or": [{"access_groups": "ops"}, {"security_level": {"$gte": 0}}]},
]
ENV_KEYS = ("RAGROUTE_API_KEYS", "RAGROUTE_API_KEYS_FILE", "RAGROUTE_API_KEY")
PATIENCE = timedelta(seconds=120)  # per request: a hung server fails the test instead of stalling the run


@pytest.fixture(scope="module")
def index_dirs(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> tuple[Path, Path]:
    """The sample corpus indexed once, plus a copy: each process holds its own index lock."""
    base = tmp_path_factory.mktemp("mcp")
    ingest_sample(base / "index", embedder).close()
    shutil.copytree(base / "index", base / "copy")
    return base / "index", base / "copy"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(extra)
    return env


def _stdio(index: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "ragroute.cli", "--index", str(index), "mcp"], env=_env(**env)
    )


def _docs(result: Any) -> set[str]:
    """Every doc_id a search or ask result names."""
    data = result.structuredContent or {}
    return {h["doc_id"] for h in data.get("hits", [])} | {c["doc_id"] for c in data.get("citations", [])}


async def _assert_runbook_hidden(session: ClientSession, extra_args: dict[str, Any] | None = None) -> None:
    """Neither tool returns the runbook, whatever filters (or stray access arguments) the call carries."""
    for filters in [None, *WIDENING_FILTERS]:
        for tool, args in (
            ("search", {"query": RUNBOOK_QUESTION, "k": 20}),
            ("ask", {"question": RUNBOOK_QUESTION}),
        ):
            result = await session.call_tool(tool, {**args, "filters": filters, **(extra_args or {})})
            assert RUNBOOK_DOC not in _docs(result), (tool, filters)
            assert RUNBOOK_SECRET not in json.dumps(result.model_dump(mode="json")), (tool, filters)


# ----------------------------------------------------------------------------- stdio


async def test_stdio_serves_search_and_ask_within_the_keys_scope(index_dirs: tuple[Path, Path]) -> None:
    params = _stdio(index_dirs[1], RAGROUTE_API_KEYS=json.dumps(KEYS), RAGROUTE_API_KEY=READER)
    async with stdio_client(params) as (read, write), ClientSession(read, write, PATIENCE) as session:
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"search", "ask"}
        for tool in tools.values():  # access is never something a caller passes
            assert set(tool.inputSchema["properties"]) <= {"query", "question", "k", "filters"}
            assert tool.outputSchema is not None and tool.annotations and tool.annotations.readOnlyHint

        found = await session.call_tool("search", {"query": PUBLIC_QUESTION, "k": 3})
        assert not found.isError
        hits = found.structuredContent["hits"]
        assert 1 <= len(hits) <= 3 and hits[0]["doc_id"] == "authentication.md"
        assert {"chunk_id", "doc_id", "title", "score", "text", "source"} <= set(hits[0])
        assert json.loads(found.content[0].text) == found.structuredContent  # text mirrors the structure

        answered = await session.call_tool("ask", {"question": PUBLIC_QUESTION})
        out = answered.structuredContent
        assert not answered.isError and not out["abstained"] and "90 days" in out["answer"]
        assert "authentication.md" in {c["doc_id"] for c in out["citations"]}
        cited = out["citations"][0]
        assert cited["n"] == 1 and cited["quote"] and f"[{cited['n']}]" in out["answer"]

        # stray access arguments are not parameters: ignored or refused, never obeyed
        await _assert_runbook_hidden(session, {"user_groups": ["ops", "sre"], "clearance": 9})

        blank = await session.call_tool("search", {"query": "   "})
        assert blank.isError and "query must not be empty" in blank.content[0].text
        bad = await session.call_tool("ask", {"question": "tokens?", "filters": {"$bogus": 1}})
        assert bad.isError and "bad filters" in bad.content[0].text


async def test_stdio_without_keys_sees_public_documents_only(index_dirs: tuple[Path, Path]) -> None:
    async with (
        stdio_client(_stdio(index_dirs[1])) as (read, write),
        ClientSession(read, write, PATIENCE) as session,
    ):
        await session.initialize()
        for filters in [None, *WIDENING_FILTERS]:
            result = await session.call_tool(
                "search", {"query": RUNBOOK_QUESTION, "k": 20, "filters": filters}
            )
            assert not result.isError and RUNBOOK_DOC not in _docs(result)
        public = await session.call_tool("search", {"query": PUBLIC_QUESTION, "k": 1})
        assert _docs(public) == {"authentication.md"}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--api-key", READER], {}, "no API keys are configured"),
        ([], {"RAGROUTE_API_KEYS": json.dumps(KEYS)}, "pass --api-key KEY"),
        (["--api-key", "not-a-key-at-all"], {"RAGROUTE_API_KEYS": json.dumps(KEYS)}, "not one of the"),
        (["--http", "--api-key", READER], {}, "over HTTP each request sends its own key"),
        (["--port", "0"], {}, "--port must be between 1 and 65535"),
    ],
)
def test_cli_refuses_an_unclear_caller(
    args: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name in ENV_KEYS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["--index", str(tmp_path / "index"), "mcp", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- streamable HTTP


@pytest.fixture(scope="module")
def mcp_url(index_dirs: tuple[Path, Path], embedder: Any) -> Iterator[str]:
    """The HTTP app on uvicorn on a free loopback port, serving an index opened with the shared embedder."""
    import uvicorn
    from ragroute.tools.index import HybridIndex

    index = HybridIndex.open(str(index_dirs[0]), embedder=embedder)
    port = free_port()
    server = build_server(IndexHolder(str(index_dirs[0]), index), port=port, log_level="warning")
    app = http_app(server, load_api_keys(KEYS))
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/mcp"
    _wait_listening(url)
    yield url
    uv.should_exit = True
    thread.join(timeout=10)
    index.close()


def _wait_listening(url: str, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Wait until `url` answers at all (the MCP endpoint answers 401 to a request without a key)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            httpx.post(url, json={}, timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} not listening after {timeout}s")


@asynccontextmanager
async def _http_session(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with (
        create_mcp_http_client(headers=headers) as client,
        streamable_http_client(url, http_client=client) as (read, write, _),
        ClientSession(read, write, PATIENCE) as session,
    ):
        await session.initialize()
        yield session


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}


def _assert_needs_a_key(url: str) -> None:
    accept = {"accept": "application/json, text/event-stream"}
    for headers, detail in (
        ({}, "missing API key"),
        ({"authorization": "Bearer wrong-key-000"}, "invalid API key"),
        ({"x-api-key": "wrong-key-000"}, "invalid API key"),
        ({"authorization": f"Basic {OPS}"}, "missing API key"),
    ):
        r = httpx.post(url, json=INITIALIZE, headers={**accept, **headers}, timeout=10)
        assert r.status_code == 401 and detail in r.json()["detail"], (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
    ok = httpx.post(url, json=INITIALIZE, headers={**accept, "authorization": f"Bearer {OPS}"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["result"]["serverInfo"]["name"] == "ragroute"


def test_http_answers_401_without_a_valid_key(mcp_url: str) -> None:
    _assert_needs_a_key(mcp_url)


async def test_http_runs_each_request_as_its_own_key(mcp_url: str) -> None:
    async with _http_session(mcp_url, {"Authorization": f"Bearer {OPS}"}) as ops:
        answered = await ops.call_tool("ask", {"question": RUNBOOK_QUESTION})
        assert RUNBOOK_DOC in _docs(answered) and not answered.structuredContent["abstained"]
        found = await ops.call_tool("search", {"query": RUNBOOK_QUESTION, "k": 3})
        assert found.structuredContent["hits"][0]["doc_id"] == RUNBOOK_DOC
        # a source names no file on the server: the doc id, the path under the ingested folder
        assert found.structuredContent["hits"][0]["source"] == RUNBOOK_DOC
        corpus = str(sample_corpus_dir())
        for result in (answered, found):
            assert corpus not in json.dumps(result.model_dump(mode="json"))
    async with _http_session(mcp_url, {"X-API-Key": READER}) as reader:
        await _assert_runbook_hidden(reader)


async def test_a_keyless_http_server_ignores_a_bearer_token_like_the_http_server() -> None:
    """OpenAI-style clients always send a Bearer token: without keys it is ignored (anonymous caller),
    as by `ragroute serve`'s guard; an X-API-Key sent to a keyless server is still refused."""
    seen: list[Any] = []

    async def downstream(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["state"][IDENTITY_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = httpx.ASGITransport(app=ApiKeyGuard(downstream, {}))
    async with httpx.AsyncClient(transport=transport, base_url="http://mcp.test") as client:
        r = await client.post("/mcp", json={}, headers={"authorization": "Bearer sk-placeholder"})
        assert r.status_code == 200 and seen == [ANONYMOUS]
        r = await client.post("/mcp", json={}, headers={"x-api-key": "not-configured"})
        assert r.status_code == 401 and r.json()["detail"] == "invalid API key"


def test_cli_serves_streamable_http(index_dirs: tuple[Path, Path]) -> None:
    """`ragroute mcp --http` as a subprocess: the guard answers 401, a Bearer key initializes a session."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragroute.cli", "mcp", "--http", "--port", str(port)]
        + ["--index", str(index_dirs[1]), "--api-keys", json.dumps(KEYS), "--log-level", "warning"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        _wait_listening(url, proc)
        _assert_needs_a_key(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ----------------------------------------------------------------------------- LangGraph agent


async def test_langgraph_agent_calls_ragroute_through_mcp_adapters(mcp_url: str) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langgraph.prebuilt import create_react_agent

    class ScriptedModel(GenericFakeChatModel):
        """Replies with the scripted messages; binding tools changes nothing (the script names them)."""

        def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
            return self

    client = MultiServerMCPClient(
        {"ragroute": {"transport": "streamable_http", "url": mcp_url, "headers": {"X-API-Key": READER}}}
    )
    tools = await client.get_tools()
    assert {t.name for t in tools} == {"search", "ask"}
    script = [
        AIMessage(
            content="",
            tool_calls=[
                {"name": "search", "args": {"query": PUBLIC_QUESTION, "k": 2}, "id": "call-1"},
                {"name": "ask", "args": {"question": RUNBOOK_QUESTION}, "id": "call-2"},
            ],
        ),
        AIMessage(content="Tokens last 90 days."),
    ]
    agent = create_react_agent(ScriptedModel(messages=iter(script)), tools)
    result = await agent.ainvoke({"messages": [("user", PUBLIC_QUESTION)]})

    replies = {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}
    assert set(replies) == {"call-1", "call-2"} and all(m.status == "success" for m in replies.values())
    hits = replies["call-1"].artifact["structured_content"]["hits"]
    assert hits[0]["doc_id"] == "authentication.md" and "authentication.md" in str(replies["call-1"].content)
    assert RUNBOOK_SECRET not in str(replies["call-2"].content)  # the agent runs as the key's identity
    assert result["messages"][-1].content == "Tokens last 90 days."
