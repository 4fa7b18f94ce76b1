"""classify node: learned router, general features, forced routes, LLM structured route with fallback."""

from __future__ import annotations

import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.classify import classify, decide, features
from ragroute.runtime.providers import Providers, using
from ragroute.state import ROUTES
from ragroute.tools.errors import InputError

from tests.node_fakes import FakeIndex, ScriptedChatModel

ROWS = [
    ("a::0", "a", "Tokens expire after 15 minutes and can be refreshed.", {"title": "Auth"}),
    (
        "b::0",
        "b",
        "Marta Oyelaran is a Nigerian architect born in 1961 in Ibadan.",
        {"title": "Marta Oyelaran"},
    ),
    (
        "c::0",
        "c",
        "Tomas Berglund is a Swedish architect born in 1958 in Uppsala.",
        {"title": "Tomas Berglund"},
    ),
]


@pytest.fixture
def ctx(tmp_path):
    return Context(index_dir=str(tmp_path)), FakeIndex(ROWS)


async def test_classify_node_probes_with_acl_and_records_route(ctx):
    context, index = ctx
    context = Context(index_dir=context.index_dir, user_groups=["eng"], clearance=1)
    with using(Providers(index=index)):
        out = await classify(
            {"question": "Which architect was born earlier, Marta Oyelaran or Tomas Berglund?"},
            Runtime(context=context),
        )
    assert out["route"] in ROUTES and out["route_reason"].startswith(
        "learned router: P(simple/expand/multihop)"
    )
    assert "compares Marta Oyelaran / Tomas Berglund" in out["route_reason"]
    assert out["trace"].value[0]["node"] == "classify" and out["timings"].value["classify"] > 0
    assert out["retrievals"].value == [] and out["candidates"].value == []  # a new run starts clean
    assert index.calls[0]["access"].groups == ["eng"] and index.calls[0]["access"].clearance == 1
    assert [h["chunk_id"] for h in out["probe"]][:2] == ["b::0", "c::0"]


async def test_forced_route_and_empty_question(ctx):
    context, index = ctx
    with using(Providers(index=index)):
        out = await classify(
            {"question": "Tokens?"}, Runtime(context=Context(index_dir=context.index_dir, route="multihop"))
        )
        assert out["route"] == "multihop" and out["route_reason"].startswith("forced")
        with pytest.raises(InputError):
            await classify({"question": "  "}, Runtime(context=context))


async def test_llm_route_and_fallback_on_bad_json(ctx):
    context, index = ctx
    good_model = ScriptedChatModel(
        script=[("Decide how to retrieve", '{"route": "expand", "reason": "vague"}')]
    )
    bad_model = ScriptedChatModel(script=[("Decide how to retrieve", "I think it is complicated")])
    with using(Providers(index=index, chat_model=good_model)):
        ok = await classify(
            {"question": "How long do tokens last?"},
            Runtime(context=Context(index_dir=context.index_dir, llm="fake:classify-ok")),
        )
    assert ok["route"] == "expand" and ok["route_reason"] == "llm: vague"
    assert ok["usage"].value["prompt_tokens"] == 100
    with using(Providers(index=index, chat_model=bad_model)):
        bad = await classify(
            {"question": "How long do tokens last?"},
            Runtime(context=Context(index_dir=context.index_dir, llm="fake:classify-bad")),
        )
    assert (bad["route"], bad["route_reason"]) == decide(bad["features"])  # the feature route is kept
    assert "classify" in bad["degradations"].value[0] and "learned router" in bad["degradations"].value[0]


@pytest.mark.parametrize(
    ("question", "cue"),
    [
        ("The museum where Marta Oyelaran first exhibited opened in what year?", "relative_clause"),
        ("the museum where Marta Oyelaran first exhibited opened in what year?", "relative_clause"),
        ("A painter who trained with Tomas Berglund was born in which city?", "relative_clause"),
        ("What is the height of the tower designed by Marta Oyelaran?", "reduced_relative"),
        ("Who founded the company of the Harbour Library architect?", "of_name"),
        ("Which river flows past Marta Oyelaran's library?", "possessive"),
    ],
)
def test_general_bridge_shapes_are_features(question, cue):
    assert features(question, [])[cue] == 1.0


def test_plain_lookup_has_no_bridge_shape():
    f = features("How long is run history kept by default?", [])
    assert not any(
        f[c] for c in ("relative_clause", "reduced_relative", "of_name", "participle_name", "possessive")
    )


def test_probe_shape_features():
    flat = [{"score": 0.5, "ranks": {"dense": 1, "bm25": 7}, "doc_id": "a"}] * 5
    sharp = [{"score": 0.9, "ranks": {"dense": 1, "bm25": 1}, "doc_id": "a"}] + [
        {"score": 0.1, "ranks": {"dense": None, "bm25": 3}, "doc_id": str(i)} for i in range(4)
    ]
    f_flat, f_sharp = features("token refresh", flat), features("token refresh", sharp)
    assert f_flat["probe_spread"] == 0.0 and f_sharp["probe_spread"] > 0.8
    assert f_flat["probe_agree"] == 0.0 and f_sharp["probe_agree"] == 1.0
    assert f_flat["probe_docs"] == 0.2 and f_sharp["probe_docs"] == 1.0
