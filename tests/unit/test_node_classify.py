"""classify node: feature classifier, forced routes, LLM structured route with fallback."""

from __future__ import annotations

import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.classify import classify, decide, features
from ragroute.runtime.providers import Providers, using
from ragroute.tools.errors import InputError

from tests.node_fakes import FakeIndex, ScriptedChatModel

ROWS = [
    ("a::0", "a", "Tokens expire after 15 minutes and can be refreshed.", {"title": "Auth"}),
    (
        "b::0",
        "b",
        "Alain Resnais was a French film director whose career spanned six decades.",
        {"title": "Alain Resnais"},
    ),
    ("c::0", "c", "Scott Sidney was an American film director of the silent era.", {"title": "Scott Sidney"}),
]


@pytest.fixture
def ctx(tmp_path):
    return Context(index_dir=str(tmp_path)), FakeIndex(ROWS)


@pytest.mark.parametrize(
    ("question", "route"),
    [
        ("Which director had the longest career, Alain Resnais or Scott Sidney?", "multihop"),
        ("Where is the hotel and casino located in which Bill Cosby's third album was recorded?", "multihop"),
        ("How long do access tokens last before they expire?", "simple"),
        ("tokens", "expand"),
    ],
)
def test_decide_routes_by_features(question, route):
    probe = [{"score": 0.9, "ranks": {"dense": 1, "bm25": 1}}, {"score": 0.3, "ranks": {}}] * 3
    got, reason = decide(features(question, probe))
    assert got == route
    assert reason


def test_flat_disagreeing_probe_pushes_short_query_to_expand():
    flat = [{"score": 0.5, "ranks": {"dense": 1, "bm25": 7}}] * 5
    sharp = [{"score": 0.9, "ranks": {"dense": 1, "bm25": 1}}] + [{"score": 0.1, "ranks": {}}] * 4
    q = "token refresh setting"
    assert decide(features(q, flat))[0] == "expand"
    assert decide(features(q, sharp))[0] == "simple"


async def test_classify_node_probes_with_acl_and_records_route(ctx):
    context, index = ctx
    context = Context(index_dir=context.index_dir, user_groups=["eng"], clearance=1)
    with using(Providers(index=index)):
        out = await classify(
            {"question": "Which director had the longest career, Alain Resnais or Scott Sidney?"},
            Runtime(context=context),
        )
    assert out["route"] == "multihop" and "Alain Resnais" in out["route_reason"]
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
    assert "classify" in bad["degradations"].value[0] and "feature classifier" in bad["degradations"].value[0]


@pytest.mark.parametrize(
    "question",
    [
        "The arena where the Boston Bruins play can seat how many people?",
        "the arena where the Boston Bruins play can seat how many people?",
        "A director who worked with Orson Welles was born in which city?",
    ],
)
def test_bridge_cue_is_found_at_the_start_of_a_sentence(question):
    assert features(question, [])["bridge_cue"]


def test_plain_lookup_has_no_bridge_cue():
    assert not features("How long is run history kept by default?", [])["bridge_cue"]


@pytest.mark.parametrize(
    "question",
    [
        "What is the uppermost age range for the sort of fiction written by Alexander Gordon Smith?",
        "This singer of A Rather Blustery Day also voiced what hedgehog?",
        "What podcast was the chief executive officer of Nerdist Industries a guest on?",
        "Flyboys stars which actor who was nominated for an Academy Award for 127 Hours?",
        "What screenwriter co-wrote a film starring Nicolas Cage and Tea Leoni?",
    ],
)
def test_questions_about_something_described_through_a_named_entity_go_multihop(question):
    probe = [{"score": 0.9, "ranks": {"dense": 1, "bm25": 1}}, {"score": 0.3, "ranks": {}}] * 3
    f = features(question, probe)
    assert f["bridge_cue"]
    assert decide(f)[0] == "multihop"


@pytest.mark.parametrize(
    "question",
    [
        "The minor allele of FOXO3 is related to less severe symptoms.",  # a claim, not a question
        "How long is the retention period for audit logs?",
        "who sang the song that was played at the end",  # no named entity to resolve through
    ],
)
def test_bridge_phrases_alone_keep_lookups_off_the_multihop_route(question):
    probe = [{"score": 0.9, "ranks": {"dense": 1, "bm25": 1}}, {"score": 0.3, "ranks": {}}] * 3
    assert decide(features(question, probe))[0] != "multihop"
