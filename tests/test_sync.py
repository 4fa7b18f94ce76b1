"""The graph from synchronous code: graph.invoke / graph.stream run the same nodes and give the same answer
as ainvoke / astream on every route, LLM tokens stream in "messages" mode, and the sync path works from
inside a running event loop (a notebook)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from ragroute.api import aask, ask
from ragroute.context import Context
from ragroute.runtime.providers import Providers
from ragroute.runtime.sync import run_sync
from ragroute.workflow import build_graph

from tests.node_fakes import ScriptedChatModel
from tests.test_graph import WIKI, plus, strip, use

ZERO_HITS = {"retrieval_hits": 0, "retrieval_misses": 0}
SIMPLE = "How long do access tokens last before they expire?"
ROUTES = [
    # routes are forced: this module checks that every route runs the same through each API, not classify
    ("tiny", SIMPLE, "simple", {"route": "simple"}),
    ("tiny", "help with this token stuff", "expand", {"route": "expand"}),
    ("tiny", "What is the population of Ulaanbaatar in 1950?", "expand", {"route": "expand"}),  # abstain path
    (
        "wiki",
        "Which director had the longest career, Alain Resnais or Scott Sidney?",
        "multihop",
        {"route": "multihop"},
    ),
    (
        "wiki",
        "Where is the hotel and casino located in which Bill Cosby's third album was recorded?",
        "multihop",
        {"k_expand": 4, "k_multihop": 4, "route": "multihop"},
    ),
]


@pytest.fixture
def indexes(make_index) -> dict[str, Providers]:
    return {"tiny": use(make_index()), "wiki": use(make_index(WIKI))}


def sync_run(question: str, ctx: Context, bound: Providers) -> tuple[list[str], dict]:
    graph = build_graph(bound).compile()
    ran = [
        node
        for chunk in graph.stream({"question": question}, context=ctx, stream_mode="updates")
        for node in chunk
    ]
    return ran, graph.invoke({"question": question}, context=ctx)


async def async_run(question: str, ctx: Context, bound: Providers) -> tuple[list[str], dict]:
    graph = build_graph(bound).compile()
    ran = [
        node
        async for chunk in graph.astream({"question": question}, context=ctx, stream_mode="updates")
        for node in chunk
    ]
    return ran, await graph.ainvoke({"question": question}, context=ctx)


def same_run(sync: tuple[list[str], dict], other: tuple[list[str], dict]) -> None:
    (ran, out), (ran2, out2) = sync, other
    assert strip(ran) == strip(ran2) and sorted(ran) == sorted(ran2)
    for key in ("answer", "route", "abstained", "citations", "contexts", "retrieved", "faithfulness"):
        assert out[key] == out2[key], key


@pytest.mark.parametrize(("corpus", "question", "route", "knobs"), ROUTES)
async def test_invoke_and_stream_match_ainvoke_and_astream(indexes, corpus, question, route, knobs):
    ctx = Context(cache=False, **knobs)
    expected = await async_run(question, ctx, indexes[corpus])
    assert expected[1]["route"] == route
    if "Ulaanbaatar" in question:
        assert expected[1]["abstained"]
    # called from a coroutine: the sync path works while this test's event loop is running
    same_run(sync_run(question, ctx, indexes[corpus]), expected)


def test_sync_path_without_a_running_loop(indexes):
    ctx = Context(cache=False)
    ran, out = sync_run(SIMPLE, ctx, indexes["tiny"])
    same_run((ran, out), asyncio.run(async_run(SIMPLE, ctx, indexes["tiny"])))
    assert "15 minutes" in out["answer"] and ran[0] == "classify" and ran[-1] == "finalize"


def test_retry_and_llm_tokens_on_the_sync_path(indexes):
    model = ScriptedChatModel(
        script=[
            ("quantum", "[0.0]"),
            ("For each numbered answer sentence", "[1.0]"),
            ("A previous answer made claims", "Access tokens expire after 15 minutes [1]."),
            ("Answer:", "Access tokens are protected by quantum keys [1]."),
        ]
    )
    bound = plus(indexes["tiny"], chat_model=model)
    ctx = Context(llm="fake:sync-retry", route="simple", cache=False)
    ran, out = sync_run(SIMPLE, ctx, bound)
    core = ["classify", "retrieve", "rerank", "prune", "generate", "verify"]
    assert strip(ran) == [*core, "prune", "generate", "verify", "finalize"]  # one retry
    assert (
        out["answer"].startswith("Access tokens expire after 15 minutes [1]") and out["generator"] == ctx.llm
    )
    tokens = [
        message.content
        for message, meta in build_graph(bound)
        .compile()
        .stream({"question": SIMPLE}, context=ctx, stream_mode="messages")
        if meta.get("langgraph_node") == "generate"
    ]
    assert (
        "".join(tokens)
        == "Access tokens are protected by quantum keys [1].Access tokens expire after 15 minutes [1]."
    )


async def test_ask_inside_a_running_loop_matches_aask(indexes):
    out = ask(SIMPLE, providers=indexes["tiny"], cache=False)
    expected = await aask(SIMPLE, providers=indexes["tiny"], cache=False)
    assert "15 minutes" in out["answer"] and out["cache"] == {"response": "off", **ZERO_HITS}
    # each delivery gets its own answer_id; everything else is the same answer
    assert out["answer_id"] != expected["answer_id"]
    assert {k: v for k, v in out.items() if k not in ("timings", "answer_id")} == {
        k: v for k, v in expected.items() if k not in ("timings", "answer_id")
    }


_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("test_sync_var", default="unset")


def test_run_sync_sees_the_callers_contextvars_and_nests():
    async def read() -> str:
        await asyncio.sleep(0)
        return _VAR.get()

    async def nested() -> str:
        return run_sync(read())  # a sync call made from a coroutine on the background loop itself

    token = _VAR.set("caller")
    try:
        assert run_sync(read()) == "caller"
        assert run_sync(nested()) == "caller"
    finally:
        _VAR.reset(token)


def test_run_sync_raises_the_coroutines_error():
    async def boom() -> Any:
        raise ValueError("from the node")

    with pytest.raises(ValueError, match="from the node"):
        run_sync(boom())
