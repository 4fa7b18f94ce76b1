"""The compiled query graph end to end on a real HybridIndex: which nodes run on every route, retry,
abstain, citation repair, ACL on every retrieval call, reranker fallback, output shape, streaming."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from ragroute.api import aask, astream
from ragroute.context import Context
from ragroute.runtime import providers
from ragroute.runtime.providers import Providers
from ragroute.state import ABSTAIN_TEXT
from ragroute.workflow import build_graph, graph

from tests.node_fakes import FailingReranker, ScriptedChatModel

OUTPUT_KEYS = {
    "answer_id",
    "answer",
    "citations",
    "route",
    "k",
    "faithfulness",
    "confidence",
    "abstained",
    "generator",
    "timings",
    "usage",
    "degradations",
    "contexts",
    "retrieved",
    "cache",
}
CORE = ["classify", "retrieve", "rerank", "prune", "generate", "verify"]

WIKI = [
    (
        "resnais",
        "Alain Resnais",
        "Alain Resnais was a French film director whose career spanned more than six "
        "decades, from 1946 to 2014.",
        {},
    ),
    (
        "sidney",
        "Scott Sidney",
        "Scott Sidney was an American film director whose career lasted from 1913 to 1929.",
        {},
    ),
    (
        "air",
        "Why Is There Air?",
        "Why Is There Air? is the third comedy album by Bill Cosby. It was recorded live "
        "at the Sands Hotel in Las Vegas.",
        {},
    ),
    (
        "sands",
        "Sands Hotel and Casino",
        "The Sands Hotel and Casino was a hotel and casino located on the Las Vegas "
        "Strip in Paradise, Nevada.",
        {},
    ),
    ("pets", "Office pets", "The office cat sleeps on the warm server rack.", {}),
    ("vegas", "Las Vegas", "Las Vegas is a city in Nevada known for gambling and entertainment.", {}),
]


class SpyIndex:
    """Delegates to the real index and records the access scope of every search."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.calls: list[dict] = []

    def search(self, query: str, k: int = 10, **kw: Any) -> Any:
        self.calls.append({"query": query, **kw})
        return self.index.search(query, k, **kw)

    def get_parent(self, parent_id: str) -> Any:
        return self.index.get_parent(parent_id)


def use(index: Any) -> Providers:
    return Providers(index=index)


def plus(bound: Providers, **objects: Any) -> Providers:
    """`bound` with more objects (a chat model, a reranker)."""
    return dataclasses.replace(bound, **objects)


async def run(question: str, bound: Providers, **ctx: Any) -> tuple[list[str], dict]:
    """Nodes that ran (in order, from stream_mode="updates") and the final output of a graph bound to
    `bound`."""
    ran: list[str] = []
    final: dict = {}
    async for mode, chunk in (
        build_graph(bound)
        .compile()
        .astream({"question": question}, context=Context(**ctx), stream_mode=["updates", "values"])
    ):
        if mode == "updates":
            ran.extend(chunk)
        else:
            final = chunk
    return ran, final


def strip(ran: list[str]) -> list[str]:
    """Collapse parallel retrieve branches into one entry."""
    out: list[str] = []
    for node in ran:
        if not (node == "retrieve" and out and out[-1] == "retrieve"):
            out.append(node)
    return out


@pytest.fixture
def tiny(make_index):
    return use(make_index())


@pytest.fixture
def wiki(make_index):
    return use(make_index(WIKI))


async def test_simple_route_runs_the_core_nodes_only(tiny):
    ran, out = await run("How long do access tokens last before they expire?", tiny, route="simple")
    assert strip(ran) == [*CORE, "finalize"] and ran.count("retrieve") == 1
    assert out["route"] == "simple" and not out["abstained"]
    assert "15 minutes" in out["answer"] and out["citations"][0]["doc_id"] == "auth"
    assert out["citations"][0]["quote"] in out["contexts"] or "15 minutes" in out["citations"][0]["quote"]
    assert set(out["timings"]) >= {*CORE, "finalize", "total"}


async def test_expand_route_retrieves_every_variant_in_parallel(tiny):
    ran, out = await run("help with this token stuff", tiny, route="expand")
    assert out["route"] == "expand"
    assert strip(ran) == ["classify", "expand", *CORE[1:], "finalize"]
    assert ran.count("retrieve") >= 2


async def test_multihop_comparison_gathers_evidence_for_both_items(wiki):
    ran, out = await run(
        "Which director had the longest career, Alain Resnais or Scott Sidney?", wiki, route="multihop"
    )
    assert out["route"] == "multihop"
    assert strip(ran) == ["classify", "decompose", *CORE[1:], "finalize"] and ran.count("retrieve") == 3
    assert {"resnais", "sidney"} <= {c.split("::")[0] for c in out["contexts"]}
    assert {"resnais", "sidney"} <= {c["doc_id"] for c in out["citations"]}


async def test_multihop_bridge_reaches_the_second_hop(wiki):
    question = "Where is the hotel and casino located in which Bill Cosby's third album was recorded?"
    ran, out = await run(question, wiki, k_expand=4, k_multihop=4, route="multihop")
    assert out["route"] == "multihop" and "decompose" in ran
    assert {"air", "sands"} <= {c.split("::")[0] for c in out["contexts"]}


async def test_retry_after_unfaithful_answer_then_success(tiny):
    model = ScriptedChatModel(
        script=[
            ("quantum", "[0.0]"),
            ("For each numbered answer sentence", "[1.0]"),
            ("A previous answer made claims", "Access tokens expire after 15 minutes [1]."),
            ("Answer:", "Access tokens are protected by quantum keys [1]."),
        ]
    )
    ran, out = await run(
        "How long do access tokens last before they expire?",
        plus(tiny, chat_model=model),
        llm="fake:retry",
        route="simple",
    )
    assert strip(ran) == [*CORE, "prune", "generate", "verify", "finalize"]
    assert out["answer"].startswith("Access tokens expire after 15 minutes [1]") and not out["abstained"]
    assert out["generator"] == "fake:retry" and out["faithfulness"] == 1.0
    assert out["usage"]["prompt_tokens"] == 4 * 100  # route forced: generate, judge, generate, judge


async def test_unfaithful_twice_abstains(tiny):
    model = ScriptedChatModel(
        script=[
            ("For each numbered answer sentence", "[0.0]"),
            ("Answer:", "Access tokens expire after 15 minutes [1]."),
        ]
    )
    ran, out = await run(
        "How long do access tokens last?", plus(tiny, chat_model=model), llm="fake:never", route="simple"
    )
    assert ran.count("verify") == 2 and ran[-1] == "finalize"
    assert out["answer"] == ABSTAIN_TEXT and out["abstained"] and out["citations"] == []


async def test_offline_abstains_on_questions_the_corpus_cannot_answer(tiny):
    ran, out = await run("What is the population of Ulaanbaatar in 1950?", tiny)
    assert out["answer"] == ABSTAIN_TEXT and out["abstained"] and out["citations"] == []
    assert ran.count("verify") == 1 and ran[-1] == "finalize"


async def test_citation_repair_in_the_output(tiny):
    model = ScriptedChatModel(
        script=[
            ("For each numbered answer sentence", "[1.0, 1.0]"),
            ("Answer:", "Access tokens expire after 15 minutes [9]. Refresh tokens last 30 days."),
        ]
    )
    _, out = await run(
        "How long do access and refresh tokens last?",
        plus(tiny, chat_model=model),
        llm="fake:repair",
        route="simple",
    )
    assert "[9]" not in out["answer"]
    cited = {c["n"] for c in out["citations"]}
    assert cited and all(f"[{n}]" in out["answer"] for n in cited)
    assert all(c["doc_id"] == "auth" for c in out["citations"])


@pytest.mark.parametrize("route", ["simple", "expand", "multihop"])
async def test_acl_reaches_every_retrieval_call(make_index, route):
    spy = SpyIndex(make_index())
    bound = Providers(index=spy)
    questions = [
        "Who reviews engineering salary bands and board acquisition of a vector database startup?",
        "What does error E1042 mean, and are salary bands or board minutes involved?",
    ]
    for q in questions:
        _, out = await run(q, bound, route=route, user_groups=["eng"], clearance=1)
        docs = {c.split("::")[0] for c in out["retrieved"] + out["contexts"]}
        assert not docs & {"salary", "secret"}, docs
    assert len(spy.calls) >= 4
    assert all(
        c["access"] is not None and c["access"].groups == ["eng"] and c["access"].clearance == 1
        for c in spy.calls
    )
    assert any("E1042" in c["query"] for c in spy.calls)
    # the eng group with clearance 1 does see the incident runbook
    assert any(
        h.doc_id == "incident" for h in spy.index.search("error E1042", 5, access=spy.calls[0]["access"])
    )


async def test_reranker_failure_falls_back_to_fused_order(tiny):
    ran, out = await run(
        "How long do access tokens last before they expire?",
        plus(tiny, reranker=FailingReranker()),
        reranker="maxsim",
    )
    assert "rerank" in ran and not out["abstained"]
    assert any(d.startswith("rerank (maxsim)") for d in out["degradations"])
    assert out["contexts"][0] == out["retrieved"][0]


async def test_output_shape_and_offline_usage(tiny):
    out = await aask("How long do refresh tokens last?", providers=tiny)
    assert set(out) == OUTPUT_KEYS
    assert out["generator"] == "extractive-offline" and out["usage"]["cost_usd"] == 0.0
    assert out["k"] == len(out["contexts"]) or out["k"] >= len(out["contexts"])
    assert 0.0 <= out["faithfulness"] <= 1.0 and 0.0 <= out["confidence"] <= 1.0
    assert out["timings"]["total"] >= out["timings"]["retrieve"]


async def test_astream_yields_node_updates_and_llm_tokens(tiny):
    model = ScriptedChatModel(
        script=[
            ("For each numbered answer sentence", "[1.0]"),
            ("Answer:", "Refresh tokens last 30 days [1]."),
        ]
    )
    events = [
        e
        async for e in astream(
            "How long do refresh tokens last?",
            providers=plus(tiny, chat_model=model),
            llm="fake:stream",
            route="simple",
        )
    ]
    tokens = "".join(e["text"] for e in events if e["type"] == "token")
    assert tokens == "Refresh tokens last 30 days [1]."
    assert [e["node"] for e in events if e["type"] == "update"][0] == "classify"
    assert events[-1]["type"] == "result" and events[-1]["data"]["answer"].startswith(
        "Refresh tokens last 30 days"
    )


async def test_astream_updates_are_the_public_view_unless_raw(tiny):
    """A library caller sees what /ask/stream sends: no hit lists, no LangGraph Overwrite objects."""
    from langgraph.types import Overwrite
    from ragroute.runtime.views import HIT_KEYS

    def hidden(data: Any) -> bool:
        return bool(HIT_KEYS & set(data or {})) or any(
            isinstance(v, Overwrite) for v in (data or {}).values()
        )

    question = "How long do refresh tokens last?"
    public = [e async for e in astream(question, providers=tiny, route="simple") if e["type"] == "update"]
    assert public and not [e["node"] for e in public if hidden(e["data"])]
    raw = [
        e async for e in astream(question, providers=tiny, route="simple", raw=True) if e["type"] == "update"
    ]
    assert [e["node"] for e in public] == [e["node"] for e in raw]
    assert any(hidden(e["data"]) for e in raw)  # raw: LangGraph's own updates


def test_builder_and_studio_graph():
    builder = build_graph()
    assert set(builder.nodes) == {
        "condense",  # only on a thread with earlier turns
        "classify",
        "expand",
        "decompose",
        "retrieve",
        "rerank",
        "prune",
        "generate",
        "verify",
        "finalize",
    }
    assert graph.get_context_jsonschema()["properties"]["reranker"]["default"] == "auto"
    assert set(graph.get_input_jsonschema()["properties"]) == {"question", "filters"}
    assert set(graph.get_output_jsonschema()["properties"]) == OUTPUT_KEYS


async def test_question_filters_and_context_filters_both_apply(tiny):
    _, out = await run(
        "How do keyword search and tokens work?",
        tiny,
        route="expand",
        filters={"category": "search"},
    )
    assert out["retrieved"] and {c.split("::")[0] for c in out["retrieved"]} == {"rrf"}
    ran: list[str] = []
    async for chunk in (
        build_graph(tiny)
        .compile()
        .astream(
            {"question": "How do keyword search and tokens work?", "filters": {"category": "security"}},
            context=Context(filters={"version": "2.10.0"}),
            stream_mode="values",
        )
    ):
        ran = chunk.get("retrieved") or ran
    assert ran and {c.split("::")[0] for c in ran} == {"auth"}


async def test_a_checkpointed_thread_starts_each_question_clean(tiny):
    from langgraph.checkpoint.memory import InMemorySaver

    saved = build_graph(tiny).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}
    ctx = Context(route="simple")
    first = await saved.ainvoke({"question": "Who reviews salary bands?"}, config, context=ctx)
    second = await saved.ainvoke({"question": "How long do refresh tokens last?"}, config, context=ctx)
    assert first["retrieved"] and second["retrieved"]
    state = (await saved.aget_state(config)).values
    assert [r["query"] for r in state["retrievals"]] == ["How long do refresh tokens last?"]
    assert [t["node"] for t in state["trace"]].count("classify") == 1
    # the second question went through condense (the thread has history) and stood on its own
    assert state["question"] == "How long do refresh tokens last?" and len(state["history"]) == 4


def test_sync_ask_outside_and_inside_an_event_loop(tiny):
    import asyncio

    from ragroute.api import ask
    from ragroute.tools.errors import ConfigError, InputError

    out = ask("How long do refresh tokens last?", providers=tiny)
    assert set(out) == OUTPUT_KEYS and "30 days" in out["answer"]

    async def inside() -> dict:
        return ask("How long do refresh tokens last?", providers=tiny)

    assert asyncio.run(inside())["answer"] == out["answer"]
    with pytest.raises(ConfigError, match="unknown setting"):
        ask("q", top_k=3)
    with pytest.raises(InputError):
        ask("   ")


async def test_concurrent_runs_each_see_only_their_own_bound_index(make_index):
    import asyncio

    tiny_spy, wiki_spy = SpyIndex(make_index()), SpyIndex(make_index(WIKI))
    tiny_q = "How long do access tokens last before they expire?"
    wiki_q = "Which director had the longest career, Alain Resnais or Scott Sidney?"
    runs = [(tiny_q, Providers(index=tiny_spy)), (wiki_q, Providers(index=wiki_spy))] * 3
    outs = await asyncio.gather(*(aask(q, providers=p, cache=False) for q, p in runs))
    tiny_docs = {c.split("::")[0] for c in tiny_spy.index.chunk_ids()}
    for (_, bound), out in zip(runs, outs, strict=True):
        docs = {c.split("::")[0] for c in out["retrieved"]}
        if bound.index is tiny_spy:
            assert docs and docs <= tiny_docs and "auth" in docs, docs
        else:
            assert docs and docs <= {row[0] for row in WIKI} and {"resnais", "sidney"} <= docs, docs
    assert tiny_spy.calls and all(c["query"] != wiki_q for c in tiny_spy.calls)
    assert wiki_spy.calls and all(c["query"] != tiny_q for c in wiki_spy.calls)
    assert providers.current() is None  # nothing stays bound after the runs


class CountingReranker:
    """Keeps the fused order and counts its calls."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]:
        self.calls += 1
        out = [{**h, "rerank_score": float(len(hits) - i)} for i, h in enumerate(hits)]
        return out[:top_n] if top_n else out


def _bound_objects(make_index) -> tuple[SpyIndex, ScriptedChatModel, Providers]:
    spy = SpyIndex(make_index())
    model = ScriptedChatModel(
        script=[
            ("For each numbered answer sentence", "[1.0]"),
            ("Answer:", "Access tokens expire after 15 minutes [1]."),
        ]
    )
    return spy, model, Providers(index=spy, chat_model=model, reranker=CountingReranker())


def test_a_graph_built_with_providers_uses_them_on_the_sync_path(make_index):
    spy, model, bound = _bound_objects(make_index)
    ctx = Context(llm="fake:bound-sync", route="simple", cache=False)
    out = build_graph(bound).compile().invoke({"question": "How long do access tokens last?"}, context=ctx)
    # the bound index was searched, the bound reranker reordered, the bound model wrote the answer
    assert spy.calls and bound.reranker.calls == 1 and model.prompts
    assert out["generator"] == "fake:bound-sync" and out["answer"].startswith("Access tokens expire")
    assert providers.current() is None


async def test_a_graph_built_with_providers_uses_them_on_the_async_path(make_index):
    spy, model, bound = _bound_objects(make_index)
    ctx = Context(llm="fake:bound-async", route="simple", cache=False)
    out = (
        await build_graph(bound)
        .compile()
        .ainvoke({"question": "How long do access tokens last?"}, context=ctx)
    )
    assert spy.calls and bound.reranker.calls == 1 and model.prompts
    assert out["generator"] == "fake:bound-async" and out["answer"].startswith("Access tokens expire")
    assert providers.current() is None
