"""Langfuse tracing end to end: the real SDK (configured only through LANGFUSE_* env vars) exports OTLP/HTTP
protobuf to a local endpoint standing in for Langfuse; we decode it with opentelemetry-proto and check the
trace tree, the attributes ragroute adds, Basic auth, the faithfulness score, the size of a traced question
(spans summarize the state, never carry all of it or LangGraph's internals), and that a Langfuse that is
down never fails a query."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from ragroute.api import aask
from ragroute.runtime import tracing
from ragroute.runtime.providers import Providers
from ragroute.server.app import create_app

from tests.integration.sample_index import (
    PUBLIC_QUESTION,
    RUNBOOK_DOC,
    RUNBOOK_QUESTION,
    assert_no_internals,
    free_port,
    ingest_sample,
)

pytestmark = pytest.mark.integration

OTLP_PATH = "/api/public/otel/v1/traces"
NODES = ["classify", "retrieve", "rerank", "prune", "generate", "verify", "finalize"]
MAX_TRACE_BYTES = 50_000  # everything sent to Langfuse for one question (before: 250 KB - 1 MB)


class Recorder(BaseHTTPRequestHandler):
    """Stands in for Langfuse: records every POST (body gunzipped) and answers like the real API."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path == OTLP_PATH:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            payload, ctype = ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"
        else:
            payload, ctype = b"{}", "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("otlp") / "index", embedder)
    yield index
    index.close()


@pytest.fixture(scope="module")
def index_dir(sample_index: Any) -> str:
    return str(sample_index.path)


@pytest.fixture
def bound(sample_index: Any) -> Providers:
    """The sample index, passed to ask() runs."""
    return Providers(index=sample_index)


@pytest.fixture
def langfuse_endpoint() -> Iterator[tuple[str, list[dict]]]:
    Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.received
    server.shutdown()
    server.server_close()


def use_langfuse(monkeypatch: pytest.MonkeyPatch, base_url: str) -> tuple[str, str]:
    """Configure tracing through the environment only (fresh key each time: the SDK caches per key)."""
    pk, sk = f"pk-lf-{uuid.uuid4().hex[:10]}", "sk-lf-test-secret"
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", pk)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", sk)
    monkeypatch.setenv("LANGFUSE_BASE_URL", base_url)
    monkeypatch.setenv("LANGFUSE_TIMEOUT", "2")
    monkeypatch.delenv("LANGFUSE_HOST", raising=False)
    tracing.set_client(None)
    return pk, sk


@pytest.fixture(autouse=True)
def _reset_tracing() -> Iterator[None]:
    yield
    tracing.shutdown()
    tracing.set_client(None)


def decode_spans(received: list[dict]) -> list[dict[str, Any]]:
    """Every exported span as {name, span_id, parent, trace_id, attrs} from the OTLP protobuf bodies."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = []
    for req in received:
        if req["path"] != OTLP_PATH:
            continue
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(req["body"])
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {}
                    for kv in s.attributes:
                        v = kv.value
                        if v.HasField("array_value"):
                            attrs[kv.key] = [x.string_value for x in v.array_value.values]
                        else:
                            attrs[kv.key] = getattr(v, v.WhichOneof("value"))
                    spans.append(
                        {
                            "name": s.name,
                            "span_id": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(),
                            "trace_id": s.trace_id.hex(),
                            "attrs": attrs,
                        }
                    )
    return spans


def meta(span: dict, key: str) -> Any:
    return json.loads(span["attrs"][f"langfuse.observation.metadata.{key}"])


def io(span: dict, key: str) -> Any:
    """A span's input or output as Langfuse shows it."""
    return json.loads(span["attrs"][f"langfuse.observation.{key}"])


def check_lean(received: list[dict]) -> None:
    """Under MAX_TRACE_BYTES in all, no span attribute with LangGraph internals or a hit's text."""
    total = sum(len(r["body"]) for r in received)
    assert total < MAX_TRACE_BYTES, total
    for span in decode_spans(received):
        assert_no_internals(json.dumps(span["attrs"], default=str))


def check_tree(spans: list[dict], route: str) -> tuple[dict, dict[str, dict]]:
    """Exactly one root, one span per node that ran (children of the root), all in one trace."""
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent"] not in ids]
    assert len(roots) == 1, [(s["name"], s["parent"]) for s in roots]
    root = roots[0]
    # a trace root: no parent, or (inside a server's own request span) marked as root for Langfuse
    assert root["parent"] == "" or root["attrs"]["langfuse.internal.as_root"] is True
    assert root["attrs"]["langfuse.trace.name"] == "ragroute"
    assert {s["trace_id"] for s in spans} == {root["trace_id"]}
    by_name = {}
    for node in NODES:
        found = [s for s in spans if s["name"] == node]
        assert len(found) == 1, (node, [s["name"] for s in spans])
        assert found[0]["parent"] == root["span_id"]
        by_name[node] = found[0]
    assert f"route:{route}" in root["attrs"]["langfuse.trace.tags"]
    return root, by_name


async def test_aask_exports_the_trace_tree_with_basic_auth(
    bound: Providers, langfuse_endpoint: tuple[str, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, received = langfuse_endpoint
    pk, sk = use_langfuse(monkeypatch, base_url)
    out = await aask(
        PUBLIC_QUESTION,
        providers=bound,
        route="simple",
        filters={"doc_type": "technical"},
        extra={"user_id": "alice", "session_id": "chat-1"},
    )
    tracing.flush()

    otlp = [r for r in received if r["path"] == OTLP_PATH]
    assert otlp, [r["path"] for r in received]
    auth = otlp[0]["headers"].get("Authorization") or otlp[0]["headers"].get("authorization")
    assert auth == "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()
    assert otlp[0]["headers"].get("Content-Type", otlp[0]["headers"].get("content-type")) == (
        "application/x-protobuf"
    )

    root, node = check_tree(decode_spans(received), "simple")
    assert root["attrs"]["user.id"] == "alice" and root["attrs"]["session.id"] == "chat-1"
    retrieve = node["retrieve"]
    assert meta(retrieve, "filters") == {"doc_type": "technical"}
    # the default scope: public documents only (every document needs all_access=True)
    assert meta(retrieve, "access") == {"groups": [], "clearance": 0} and meta(retrieve, "k") == 30
    assert "authentication.md" in meta(retrieve, "doc_ids")
    assert len(meta(retrieve, "scores")) == len(meta(retrieve, "doc_ids"))
    assert meta(node["rerank"], "k") == out["k"]
    check_lean(received)
    assert meta(node["verify"], "faithfulness") == out["faithfulness"]
    assert meta(root, "usage") == out["usage"]

    scores = [json.loads(r["body"]) for r in received if r["path"] == "/api/public/scores"]
    flat = [s for batch in scores for s in (batch if isinstance(batch, list) else [batch])]
    assert [(s["name"], s["value"], s["traceId"]) for s in flat] == [
        ("faithfulness", out["faithfulness"], root["trace_id"])
    ]


async def test_server_runs_are_traced_with_the_callers_identity(
    index_dir: str, langfuse_endpoint: tuple[str, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, received = langfuse_endpoint
    use_langfuse(monkeypatch, base_url)
    keys = {"ops-key-0000001": {"user": "olga", "groups": ["ops"], "clearance": 2}}
    app = create_app(index_dir, keys)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):  # startup ... shutdown, as uvicorn runs it
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as c:
            r = await c.post(
                "/ask/invoke",
                headers={"X-API-Key": "ops-key-0000001", "X-Session-Id": "ticket-9"},
                json={"input": {"question": RUNBOOK_QUESTION}},
            )
        assert r.status_code == 200, r.text
        assert not [x for x in received if x["path"] == OTLP_PATH]  # batched: nothing sent yet ...
    out = r.json()["output"]  # ... the server's shutdown flushed it
    root, node = check_tree(decode_spans(received), out["route"])
    assert root["attrs"]["user.id"] == "olga" and root["attrs"]["session.id"] == "ticket-9"
    assert meta(node["retrieve"], "access") == {"groups": ["ops"], "clearance": 2}
    assert RUNBOOK_DOC in meta(node["rerank"], "doc_ids")
    check_lean(received)


async def test_openai_completions_are_traced_with_the_callers_session(
    index_dir: str, langfuse_endpoint: tuple[str, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/v1/chat/completions is traced like /ask/invoke: the caller as user, X-Session-Id as session."""
    base_url, received = langfuse_endpoint
    use_langfuse(monkeypatch, base_url)
    keys = {"ops-key-0000001": {"user": "olga", "groups": ["ops"], "clearance": 2}}
    app = create_app(index_dir, keys)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as c:
            r = await c.post(
                "/v1/chat/completions",
                headers={"Authorization": "Bearer ops-key-0000001", "X-Session-Id": "chat-3"},
                # not /ask's question: a response-cache hit would run no graph and send no trace
                json={
                    "model": "ragroute",
                    "messages": [{"role": "user", "content": f"{RUNBOOK_QUESTION} Thanks"}],
                },
            )
        assert r.status_code == 200, r.text
    root, _ = check_tree(decode_spans(received), r.json()["ragroute"]["route"])
    assert root["attrs"]["user.id"] == "olga" and root["attrs"]["session.id"] == "chat-3"


@pytest.mark.parametrize("route", ["simple", "expand", "multihop"])
async def test_a_traced_question_is_small_and_its_spans_summarize_the_state(
    bound: Providers, langfuse_endpoint: tuple[str, list[dict]], monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    base_url, received = langfuse_endpoint
    use_langfuse(monkeypatch, base_url)
    out = await aask(PUBLIC_QUESTION, providers=bound, route=route)
    tracing.flush()
    check_lean(received)

    spans = decode_spans(received)
    root = next(s for s in spans if s["attrs"].get("langfuse.trace.name") == "ragroute" and not s["parent"])
    assert io(root, "input") == {"question": PUBLIC_QUESTION}
    assert io(root, "output")["answer"] == out["answer"]
    by_name = {s["name"]: s for s in spans}
    # a node's output: what it produced, hit lists as counts, chunk ids and scores (no text)
    candidates = io(by_name["retrieve"], "output")["candidates"]
    assert candidates["count"] == len(candidates["chunk_ids"]) == len(candidates["scores"]) > 0
    assert io(by_name["classify"], "output")["usage"] == {}  # an Overwrite(...) shown as its value
    # a node's input: the question and scalars, lists as counts
    generate_in = io(by_name["generate"], "input")
    assert generate_in["question"] == PUBLIC_QUESTION and generate_in["route"] == route
    assert generate_in["sources"] == {"count": len(out["contexts"])}
    assert io(by_name["finalize"], "output")["citations"] == out["citations"]


async def test_a_down_langfuse_never_fails_a_query(
    index_dir: str, bound: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_langfuse(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert tracing.enabled()
    out = await aask(PUBLIC_QUESTION, providers=bound, route="simple")
    assert "90 days" in out["answer"] and out["citations"]
    started = time.monotonic()
    tracing.flush()  # export fails in the background; flushing neither raises nor hangs
    assert time.monotonic() - started < 30
    app = create_app(index_dir, {})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120
    ) as c:
        r = await c.post("/ask/invoke", json={"input": {"question": PUBLIC_QUESTION}})
    assert r.status_code == 200 and "90 days" in r.json()["output"]["answer"]
