"""The HTTP API for real: httpx against the ASGI app, and a uvicorn server on loopback driven by langserve's
RemoteRunnable (invoke, batch, stream). Covers API keys, ACL enforcement that a request cannot widen,
ingest/delete round trips, 4xx for user mistakes, /health and /ready."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ragroute.server.app import create_app
from ragroute.server.auth import load_api_keys
from ragroute.server.policy import server_configurable

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

READER = "reader-key-0001"
OPS = "ops-key-0000002"
WRITER = "writer-key-0003"
KEYS = {
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    OPS: {"user": "olga", "groups": ["ops"], "clearance": 2},
    WRITER: {"user": "wes", "write": True, "unrestricted": True},
}
# what a caller might try to widen its own access with
WIDEN = {"configurable": {"user_groups": ["ops", "sre"], "clearance": 9, "index_dir": "/tmp/elsewhere"}}


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("server") / "index", embedder)
    yield index
    index.close()


@pytest.fixture(scope="module")
def app(sample_index: Any) -> Any:
    return create_app(sample_index.path, KEYS, index=sample_index, tracing=False)


@pytest.fixture
async def client(app: Any) -> Any:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ragroute.test", timeout=120
    ) as c:
        yield c


def cited_docs(output: dict) -> set[str]:
    return {c["doc_id"] for c in output["citations"]}


def chunk_docs(output: dict) -> set[str]:
    """Documents of every chunk the run retrieved or put in the context."""
    return {cid.split("::")[0] for cid in [*output["retrieved"], *output["contexts"]]}


async def ask(client: httpx.AsyncClient, key: str, question: str, config: dict | None = None) -> Any:
    body: dict[str, Any] = {"input": {"question": question}}
    if config is not None:
        body["config"] = config
    return await client.post("/ask/invoke", json=body, headers={"X-API-Key": key})


# ----------------------------------------------------------------------------- health, auth


async def test_health_and_ready_need_no_key(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}  # no key: nothing about the index's contents


async def test_ready_reports_503_when_the_index_cannot_open(tmp_path: Any) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the index folder should be")
    app = create_app(str(blocker), {}, tracing=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/ready")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"


@pytest.mark.parametrize(
    "headers,detail", [({}, "missing X-API-Key header"), ({"X-API-Key": "nope-nope-nope"}, "invalid API key")]
)
async def test_protected_routes_need_a_valid_key(
    client: httpx.AsyncClient, headers: dict, detail: str
) -> None:
    for method, path, kwargs in [
        ("POST", "/ask/invoke", {"json": {"input": {"question": PUBLIC_QUESTION}}}),
        ("POST", "/ask/stream", {"json": {"input": {"question": PUBLIC_QUESTION}}}),
        ("POST", "/ingest", {"json": {"documents": [{"doc_id": "x", "text": "y"}]}}),
        ("DELETE", "/documents/authentication.md", {}),
        ("GET", "/ask/input_schema", {}),
    ]:
        r = await client.request(method, path, headers=headers, **kwargs)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["detail"] == detail


def test_api_keys_from_env_and_bad_key_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("RAGROUTE_API_KEYS", json.dumps({"k" * 12: {"user": "u", "groups": ["g"]}}))
    keys = load_api_keys()
    assert keys["k" * 12].groups == ("g",) and keys["k" * 12].clearance == 0 and not keys["k" * 12].write
    from ragroute.tools.errors import ConfigError

    bad = tmp_path / "keys.json"
    bad.write_text('{"short": {}}')
    with pytest.raises(ConfigError, match="at least 8"):
        load_api_keys(str(bad))
    with pytest.raises(ConfigError, match="clearance"):
        load_api_keys({"k" * 12: {"clearance": "high"}})
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_api_keys("{not json")


# ----------------------------------------------------------------------------- ACL


def test_server_configurable_forces_identity_and_index() -> None:
    from ragroute.server.auth import Identity
    from ragroute.server.state import ServerSettings

    settings = ServerSettings(index_dir="/srv/index")
    ident = Identity(user="rita", groups=("eng",), clearance=1)
    out = server_configurable(
        {"user_groups": ["ops"], "clearance": 9, "index_dir": "/x", "llm": "openai:gpt-4o", "k_simple": 2},
        ident,
        settings,
    )
    assert out["user_groups"] == ["eng"] and out["clearance"] == 1
    assert out["index_dir"] == "/srv/index" and out["llm"] is None and out["k_simple"] == 2


async def test_restricted_runbook_never_reaches_a_caller_without_access(client: httpx.AsyncClient) -> None:
    # the ops key (groups ops, clearance 2) gets the runbook answer ...
    allowed = await ask(client, OPS, RUNBOOK_QUESTION)
    assert allowed.status_code == 200, allowed.text
    assert RUNBOOK_DOC in cited_docs(allowed.json()["output"])
    # ... the reader (eng, clearance 1) never does, even when its body asks for ops/sre and clearance 9
    for config in (None, WIDEN):
        r = await ask(client, READER, RUNBOOK_QUESTION, config)
        assert r.status_code == 200, r.text
        out = r.json()["output"]
        assert RUNBOOK_DOC not in cited_docs(out) | chunk_docs(out)
        assert RUNBOOK_SECRET not in r.text
    # a per-question filter naming the runbook only narrows: nothing comes back at all
    r = await client.post(
        "/ask/invoke",
        headers={"X-API-Key": READER},
        json={"input": {"question": RUNBOOK_QUESTION, "filters": {"doc_id": RUNBOOK_DOC}}, **WIDEN},
    )
    assert r.status_code == 200 and r.json()["output"]["abstained"] is True
    assert r.json()["output"]["retrieved"] == []


async def test_invoke_answers_come_from_the_response_cache_per_caller(client: httpx.AsyncClient) -> None:
    from ragroute.runtime import caching

    caching.set_cache(None)
    first = await ask(client, OPS, RUNBOOK_QUESTION)
    again = await ask(client, OPS, RUNBOOK_QUESTION)
    assert first.status_code == again.status_code == 200, first.text
    one, two = first.json()["output"], again.json()["output"]
    assert one["cache"]["response"] == "miss" and two["cache"]["response"] == "hit"
    assert two["answer"] == one["answer"] and two["citations"] == one["citations"]
    assert RUNBOOK_DOC in cited_docs(two)
    # another caller's scope is another key: the cached ops answer never reaches the reader
    r = await ask(client, READER, RUNBOOK_QUESTION, WIDEN)
    out = r.json()["output"]
    assert out["cache"]["response"] == "miss"
    assert RUNBOOK_DOC not in cited_docs(out) | chunk_docs(out) and RUNBOOK_SECRET not in r.text
    # another setting is another answer, and the setting reaches the graph through the cached route
    r = await ask(client, OPS, RUNBOOK_QUESTION, {"configurable": {"route": "expand"}})
    assert r.json()["output"]["cache"]["response"] == "miss" and r.json()["output"]["route"] == "expand"
    caching.set_cache(None)


async def test_config_hash_in_the_path_cannot_widen_access(client: httpx.AsyncClient) -> None:
    from langserve.lzstring import LZString

    config_hash = LZString.compressToEncodedURIComponent(json.dumps(WIDEN))
    r = await client.post(
        f"/ask/c/{config_hash}/invoke",
        headers={"X-API-Key": READER},
        json={"input": {"question": RUNBOOK_QUESTION}},
    )
    assert r.status_code == 200, r.text
    assert RUNBOOK_DOC not in chunk_docs(r.json()["output"]) and RUNBOOK_SECRET not in r.text
    bad = await client.post("/ask/c/not-a-hash/invoke", headers={"X-API-Key": READER}, json={"input": {}})
    assert bad.status_code in (400, 422)


async def test_stream_events_and_batch_enforce_the_same_acl(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/ask/stream_events",
        headers={"X-API-Key": READER},
        json={"input": {"question": "What is the break-glass account during an incident?"}, **WIDEN},
    )
    assert r.status_code == 200
    events = [line for line in r.text.splitlines() if line.startswith("event:")]
    assert "event: end" in events and len(events) > 10  # node start/end events were streamed
    assert RUNBOOK_SECRET not in r.text and RUNBOOK_DOC not in r.text

    batch = await client.post(
        "/ask/batch",
        headers={"X-API-Key": READER},
        json={"inputs": [{"question": RUNBOOK_QUESTION}, {"question": PUBLIC_QUESTION}], "config": WIDEN},
    )
    assert batch.status_code == 200, batch.text
    outputs = batch.json()["output"]
    assert RUNBOOK_DOC not in chunk_docs(outputs[0])
    assert "authentication.md" in cited_docs(outputs[1])


# ----------------------------------------------------------------------------- ingest / delete


async def test_ingest_then_delete_round_trip(client: httpx.AsyncClient) -> None:
    doc = {
        "doc_id": "api-note",
        "title": "Zephyr quota",
        "text": "The Zephyr export quota is 4242 rows per hour for every workspace.",
        "metadata": {"doc_type": "reference"},
    }
    r = await client.post("/ingest", headers={"X-API-Key": WRITER}, json={"documents": [doc]})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == ["api-note"] and r.json()["counts"]["failed"] == 0
    again = await client.post("/ingest", headers={"X-API-Key": WRITER}, json={"documents": [doc]})
    assert again.json()["unchanged"] == ["api-note"]

    question = "What is the Zephyr export quota per hour?"
    found = (await ask(client, READER, question)).json()["output"]
    assert "api-note" in cited_docs(found) and "4242" in found["answer"]

    gone = await client.delete("/documents/api-note", headers={"X-API-Key": WRITER})
    assert gone.status_code == 200 and gone.json() == {"deleted": "api-note", "soft": True}
    after = (await ask(client, READER, question)).json()["output"]
    assert "api-note" not in chunk_docs(after)
    missing = await client.delete("/documents/api-note", headers={"X-API-Key": WRITER})
    assert missing.status_code == 404


async def test_multipart_upload_and_write_permission(client: httpx.AsyncClient) -> None:
    files = [
        ("files", ("notes.md", b"# Notes\n\nThe Quasar relay listens on port 7781.\n", "text/markdown")),
        ("files", ("bad.exe", b"MZ\x00\x01", "application/octet-stream")),
    ]
    r = await client.post(
        "/ingest", headers={"X-API-Key": WRITER}, files=files, data={"meta": '{"category": "ops"}'}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["added"] == ["notes.md"]
    assert [f["source"] for f in report["failed"]] == ["upload:bad.exe"]
    assert "unsupported file type" in report["failed"][0]["message"]
    denied = await client.post(
        "/ingest", headers={"X-API-Key": READER}, json={"documents": [{"doc_id": "x", "text": "y"}]}
    )
    assert denied.status_code == 403
    assert (await client.delete("/documents/notes.md", headers={"X-API-Key": READER})).status_code == 403
    assert (await client.delete("/documents/notes.md", headers={"X-API-Key": WRITER})).status_code == 200


# ----------------------------------------------------------------------------- 4xx for user mistakes


@pytest.mark.parametrize(
    "body,status,fragment",
    [
        ({"input": {"question": ""}}, 422, "question must be a non-empty string"),
        ({"input": {"question": "   "}}, 422, "question must be a non-empty string"),
        ({"input": {"question": "x" * 2001}}, 422, "limit is 2000"),
        ({"input": {"question": "q", "filters": {"$bogus": 1}}}, 422, "unknown operator"),
        ({"input": {"question": "q", "filters": "doc_type=x"}}, 422, "filters"),
        ({"input": {"question": "q", "mode": "fast"}}, 422, "unknown field"),
        ({"input": {"question": "q"}, "config": {"configurable": {"k_simple": 0}}}, 422, "k_simple=0"),
        (
            {"input": {"question": "q"}, "config": {"configurable": {"candidate_k": 5000}}},
            422,
            "limit of 200",
        ),
        (
            {"input": {"question": "q"}, "config": {"configurable": {"reranker": "cross-encoder:/etc"}}},
            422,
            "",
        ),
        ({"input": {"question": "q"}, "config": {"configurable": {"route": "fastest"}}}, 422, "route"),
        ({"input": "just a string"}, 422, ""),
        ({"question": "q"}, 422, ""),
    ],
)
async def test_bad_requests_get_clear_4xx(
    client: httpx.AsyncClient, body: dict, status: int, fragment: str
) -> None:
    r = await client.post("/ask/invoke", json=body, headers={"X-API-Key": READER})
    assert r.status_code == status, r.text
    detail = json.dumps(r.json()["detail"])
    assert fragment in detail


async def test_body_size_limit_and_bad_ingest(client: httpx.AsyncClient, app: Any) -> None:
    big = {"input": {"question": "x" * 1_100_000}}
    r = await client.post("/ask/invoke", json=big, headers={"X-API-Key": READER})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    raw = await client.post(
        "/ask/invoke", content=b"{not json", headers={"X-API-Key": READER, "content-type": "application/json"}
    )
    assert raw.status_code == 422
    w = {"X-API-Key": WRITER}
    cases = [
        ({"documents": []}, "non-empty list"),
        ({"documents": [{"doc_id": "a"}]}, "documents[0].text"),
        ({"documents": [{"doc_id": "a", "text": "t", "format": "pdf"}]}, "format"),
        ({"documents": [{"doc_id": "a", "text": "t"}], "meta": {"security_level": "top"}}, "security_level"),
        ({"docs": []}, "unknown field"),
    ]
    for body, fragment in cases:
        r = await client.post("/ingest", json=body, headers=w)
        assert r.status_code == 422, (body, r.text)
        assert fragment in r.json()["detail"], r.text
    r = await client.post("/ingest", content=b"plain", headers={**w, "content-type": "text/plain"})
    assert r.status_code == 415


# ----------------------------------------------------------------------------- real uvicorn + RemoteRunnable


@pytest.fixture(scope="module")
def live_url(app: Any) -> Iterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", timeout=30)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_remote_runnable_invoke_batch_and_stream(live_url: str) -> None:
    from langserve import RemoteRunnable

    reader = RemoteRunnable(f"{live_url}/ask/", headers={"X-API-Key": READER}, timeout=120)
    out = reader.invoke({"question": PUBLIC_QUESTION})
    assert "90 days" in out["answer"] and "authentication.md" in cited_docs(out)
    assert out["route"] in ("simple", "expand", "multihop") and out["faithfulness"] >= 0.5

    # streaming: one update per node, in graph order, ending with the finalized answer
    chunks = list(reader.stream({"question": RUNBOOK_QUESTION}, config=WIDEN))
    nodes = [next(iter(c)) for c in chunks]
    assert nodes[0] == "classify" and nodes[-1] == "finalize"
    assert {"retrieve", "rerank", "prune", "generate", "verify"} <= set(nodes)
    final = chunks[-1]["finalize"]
    assert RUNBOOK_DOC not in cited_docs(final)
    assert RUNBOOK_SECRET not in json.dumps(chunks)

    ops = RemoteRunnable(f"{live_url}/ask/", headers={"X-API-Key": OPS}, timeout=120)
    both = ops.batch([{"question": RUNBOOK_QUESTION}, {"question": PUBLIC_QUESTION}])
    assert RUNBOOK_DOC in cited_docs(both[0]) and "authentication.md" in cited_docs(both[1])


async def test_remote_runnable_async_stream_and_auth_error(live_url: str) -> None:
    from langserve import RemoteRunnable

    ops = RemoteRunnable(f"{live_url}/ask/", headers={"X-API-Key": OPS}, timeout=120)
    started = time.monotonic()
    seen = [next(iter(c)) async for c in ops.astream({"question": RUNBOOK_QUESTION})]
    assert seen[0] == "classify" and seen[-1] == "finalize" and time.monotonic() - started < 60

    anonymous = RemoteRunnable(f"{live_url}/ask/", timeout=30)
    with pytest.raises(httpx.HTTPStatusError) as err:
        await anonymous.ainvoke({"question": PUBLIC_QUESTION})
    assert err.value.response.status_code == 401
    for remote in (ops, anonymous):  # close on this loop, not in a finalizer after it is gone
        await remote.async_client.aclose()
