"""What /ask/stream and /ask/stream_events send, through the real app: each node's public fields (the output
schema, the question and the trace notes), never LangGraph's control objects (`Overwrite`, `Send`
internals, checkpoint namespaces) nor the state's document lists with their full text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ragroute.server.app import create_app
from ragroute.state import InputState, OutputState, RetrieveTask

from tests.integration.sample_index import PUBLIC_QUESTION, assert_no_internals, ingest_sample

pytestmark = pytest.mark.integration

PUBLIC = {*InputState.__annotations__, *OutputState.__annotations__, *RetrieveTask.__annotations__, "trace"}
HIT_LISTS = ["probe", "candidates", "ranked", "documents", "sources", "retrievals"]


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("stream") / "index", embedder)
    yield index
    index.close()


@pytest.fixture
async def client(sample_index: Any) -> Any:
    app = create_app(sample_index.path, {}, index=sample_index, tracing=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ragroute.test", timeout=120
    ) as c:
        yield c


def sse(text: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a server-sent-event body."""
    out = []
    for block in re.split(r"\r?\n\r?\n", text.strip()):
        lines = block.splitlines()
        event = lines[0].removeprefix("event:").strip()
        data = "\n".join(line.removeprefix("data:").strip() for line in lines[1:] if line.startswith("data:"))
        out.append((event, json.loads(data) if data else None))
    return out


@pytest.mark.parametrize("route", ["simple", "expand"])
async def test_stream_sends_each_nodes_public_fields(client: httpx.AsyncClient, route: str) -> None:
    r = await client.post(
        "/ask/stream",
        json={"input": {"question": PUBLIC_QUESTION}, "config": {"configurable": {"route": route}}},
    )
    assert r.status_code == 200, r.text
    assert_no_internals(r.text)
    chunks = [data for event, data in sse(r.text) if event == "data"]
    nodes = [next(iter(c)) for c in chunks]
    assert nodes[0] == "classify" and nodes[-1] == "finalize" and "retrieve" in nodes
    for chunk in chunks:
        (update,) = chunk.values()
        assert set(update) <= PUBLIC, set(update) - PUBLIC
    assert chunks[0]["classify"]["route"] == route
    assert isinstance(chunks[0]["classify"]["usage"], dict)  # an Overwrite(...) arrives as its value
    assert chunks[0]["classify"]["trace"][0]["node"] == "classify"
    final = chunks[-1]["finalize"]
    assert "90 days" in final["answer"] and final["citations"]
    assert len(r.content) < 20_000  # before: ~70 KB for one simple question, the state's hit lists


async def test_stream_events_carry_no_internals_or_document_lists(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/ask/stream_events",
        json={"input": {"question": PUBLIC_QUESTION}, "config": {"configurable": {"route": "expand"}}},
    )
    assert r.status_code == 200, r.text
    assert_no_internals(r.text)
    events = [data for event, data in sse(r.text) if event == "data"]
    assert {e["event"] for e in events} >= {"on_chain_start", "on_chain_stream", "on_chain_end"}
    for e in events:
        for payload in e["data"].values():
            if isinstance(payload, dict):
                assert not set(payload) & set(HIT_LISTS), (e["event"], e["name"], set(payload))
        assert set(e.get("metadata", {})) <= {"ls_integration", "langgraph_step", "langgraph_node"}
    # the fan-out to parallel retrieves: each Send as its node and task
    sends = [e["data"]["output"] for e in events if e["name"] == "fan_out" and e["event"] == "on_chain_end"]
    assert sends and all(s["send"] == "retrieve" and s["arg"]["query"] for s in sends[0])
    end = [e for e in events if e["event"] == "on_chain_end" and e["name"] == "/ask"][-1]
    assert "90 days" in end["data"]["output"]["answer"]
    assert len(r.content) < 150_000  # before: over 1 MB for one question


async def test_stream_log_the_playgrounds_stream_is_public_too(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/ask/stream_log",
        json={"input": {"question": PUBLIC_QUESTION}, "config": {"configurable": {"route": "expand"}}},
    )
    assert r.status_code == 200, r.text
    assert_no_internals(r.text)
    patches = [data for event, data in sse(r.text) if event == "data"]
    values = [op["value"] for p in patches for op in p["ops"] if isinstance(op.get("value"), dict)]
    for value in values:
        assert not set(value) & set(HIT_LISTS), set(value)
    assert "90 days" in r.text
