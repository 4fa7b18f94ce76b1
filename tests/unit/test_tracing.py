"""Langfuse tracing with the SDK's own machinery but an in-memory OpenTelemetry exporter: the span tree of a
real graph run (one span per node), ragroute's attributes on them, the route tag, usage/cost on the LLM
generation, the faithfulness score, and silence when no keys are configured."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from ragroute.api import aask
from ragroute.runtime import providers, tracing

from tests.node_fakes import ScriptedChatModel

NODES = ["classify", "retrieve", "rerank", "prune", "generate", "verify", "finalize"]


@pytest.fixture
def langfuse_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, list[dict]]]:
    """A Langfuse client whose spans land in memory and whose scores are recorded; installed for runs."""
    from langfuse import Langfuse
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    client = Langfuse(  # the SDK keeps one client per public key, so each test gets its own key
        public_key=f"pk-lf-unit-{uuid.uuid4().hex[:8]}",
        secret_key="sk-lf-unit-test",
        base_url="http://127.0.0.1:9",  # never contacted: spans go to memory, scores are captured below
        tracer_provider=TracerProvider(),
        span_exporter=exporter,
    )
    scores: list[dict] = []
    monkeypatch.setattr(client._resources, "add_score_task", lambda score, **kw: scores.append(score))
    tracing.set_client(client)
    yield client, exporter, scores
    tracing.set_client(None)


def spans_by_name(exporter: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def meta(span: Any, key: str) -> Any:
    """A Langfuse observation metadata value (JSON-encoded in the OTel attribute)."""
    return json.loads(span.attributes[f"langfuse.observation.metadata.{key}"])


async def test_one_trace_with_a_span_per_node_and_retrieval_attributes(
    make_index: Any, langfuse_memory
) -> None:
    client, exporter, scores = langfuse_memory
    index = make_index()
    out = await aask(
        "How long do access tokens last?",
        providers=providers.Providers(index=index),
        index_dir=index.path,
        route="simple",
        user_groups=["eng"],
        clearance=1,
        filters={"language": "en"},
        extra={"user_id": "alice", "session_id": "chat-7"},
    )
    client.flush()
    spans = spans_by_name(exporter)
    root = spans["ragroute"][0]
    assert root.parent is None
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {root.context.trace_id}
    for node in NODES:  # one span per node that ran, each a child of the root
        assert len(spans[node]) == 1, node
        assert spans[node][0].parent.span_id == root.context.span_id
    assert "expand" not in spans and "decompose" not in spans

    assert root.attributes["user.id"] == "alice" and root.attributes["session.id"] == "chat-7"
    assert "route:simple" in root.attributes["langfuse.trace.tags"]

    retrieve = spans["retrieve"][0]
    assert meta(retrieve, "query") == "How long do access tokens last?"
    assert meta(retrieve, "k") == 30
    assert meta(retrieve, "filters") == {"language": "en"}
    assert meta(retrieve, "access") == {"groups": ["eng"], "clearance": 1}
    doc_ids, scores_ = meta(retrieve, "doc_ids"), meta(retrieve, "scores")
    assert "auth" in doc_ids and len(doc_ids) == len(scores_) == meta(retrieve, "hits")
    assert scores_ == sorted(scores_, reverse=True)
    assert not {"salary", "secret"} & set(doc_ids)  # the ACL the trace reports is the one applied

    rerank = spans["rerank"][0]
    assert meta(rerank, "k") == out["k"] and len(meta(rerank, "doc_ids")) == out["k"]
    assert meta(spans["classify"][0], "route") == "simple"
    assert meta(spans["verify"][0], "faithfulness") == out["faithfulness"]

    assert [(s["name"], s["value"], s["traceId"]) for s in scores] == [
        ("faithfulness", out["faithfulness"], format(root.context.trace_id, "032x"))
    ]


async def test_llm_generation_carries_token_usage_and_cost(make_index: Any, langfuse_memory) -> None:
    client, exporter, _ = langfuse_memory
    index = make_index()
    model = ScriptedChatModel(
        script=[
            ("For each numbered answer sentence", "[1.0]"),
            ("Answer:", "Access tokens expire after 15 minutes [1]."),
        ]
    )
    out = await aask(
        "How long do access tokens last?",
        providers=providers.Providers(index=index, chat_model=model),
        index_dir=index.path,
        llm="fake:gpt-4o-mini",
        route="simple",
    )
    client.flush()
    spans = spans_by_name(exporter)
    gens = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes.get("langfuse.observation.type") == "generation"
    ]
    assert len(gens) == 2  # the answer and the faithfulness judge
    parents = {s.context.span_id: s.name for s in exporter.get_finished_spans()}
    assert sorted(parents[g.parent.span_id] for g in gens) == ["generate", "verify"]
    for gen in gens:
        usage = json.loads(gen.attributes["langfuse.observation.usage_details"])
        assert usage["input"] == 100 and usage["output"] == 20
        cost = json.loads(gen.attributes["langfuse.observation.cost_details"])
        assert cost["total"] == pytest.approx(100 * 0.15e-6 + 20 * 0.60e-6)
    root = spans["ragroute"][0]
    assert meta(root, "usage") == out["usage"] and out["usage"]["prompt_tokens"] == 200
    assert meta(spans["generate"][0], "generator") == "fake:gpt-4o-mini"


def test_without_keys_nothing_is_traced_or_logged(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_BASE_URL", "LANGFUSE_HOST"):
        monkeypatch.delenv(var, raising=False)
    tracing.set_client(None)
    caplog.set_level(logging.DEBUG)
    assert not tracing.enabled() and tracing.get_client() is None
    config = {"metadata": {"a": 1}}
    assert tracing.traced_config(config, user_id="u", session_id="s") == config
    tracing.flush()
    assert [r for r in caplog.records if "langfuse" in r.name.lower() or "tracing" in r.name] == []


def test_traced_config_adds_handler_and_trace_attributes(
    monkeypatch: pytest.MonkeyPatch, langfuse_memory
) -> None:
    from ragroute.context import Context

    ctx = Context(extra={"session_id": "s-1", "tags": ["beta"]})
    config = tracing.traced_config({"callbacks": [], "metadata": {"k": "v"}}, ctx=ctx, user_id="bob")
    assert isinstance(config["callbacks"][0], tracing.RagrouteCallbackHandler)
    assert config["metadata"] == {
        "k": "v",
        "langfuse_user_id": "bob",
        "langfuse_session_id": "s-1",
        "langfuse_trace_name": "ragroute",
        "langfuse_tags": ["beta", "ragroute"],
    }


async def test_astream_is_traced_as_one_question(make_index: Any, langfuse_memory) -> None:
    from ragroute.api import astream

    client, exporter, scores = langfuse_memory
    index = make_index()
    bound = providers.Providers(index=index)
    events = [
        e
        async for e in astream(
            "How long do access tokens last?", providers=bound, index_dir=index.path, route="simple"
        )
    ]
    assert events[-1]["type"] == "result"
    client.flush()
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1 and "route:simple" in roots[0].attributes["langfuse.trace.tags"]
    assert {s.name for s in spans} >= set(NODES)
    assert [s["name"] for s in scores] == ["faithfulness"]
