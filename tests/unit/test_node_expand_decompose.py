"""expand and decompose nodes: offline PRF variants / rule-based sub-questions, LLM paths, fallbacks."""

from __future__ import annotations

from langgraph.runtime import Runtime

from agent import providers
from agent.context import Context
from nodes.decompose import bridge_entities, comparison_subquestions, decompose, offline_subquestions
from nodes.expand import expand, offline_variants, prf_terms
from tests.node_fakes import ScriptedChatModel

PROBE = [
    {
        "chunk_id": "x::0",
        "text": "Kubernetes pods restart when liveness probes fail repeatedly.",
        "metadata": {"title": "Pods"},
    },
    {
        "chunk_id": "y::0",
        "text": "A failing liveness probe makes the kubelet restart the pod.",
        "metadata": {"title": "Probes"},
    },
    {
        "chunk_id": "z::0",
        "text": "Readiness probes gate traffic; liveness probes restart pods.",
        "metadata": {},
    },
]
BRIDGE_PROBE = [
    {
        "chunk_id": "album::0",
        "text": "Why Is There Air? is the third album by Bill Cosby. "
        "It was recorded at the Sands Hotel in Las Vegas.",
        "metadata": {"title": "Why Is There Air?"},
    }
]


def test_prf_terms_come_from_the_top_hits_not_the_question():
    terms = prf_terms("why does my container keep restarting", PROBE)
    assert "liveness" in terms and "probes" in terms
    assert "container" not in terms


def test_offline_variants_add_feedback_terms_and_keywords():
    variants = offline_variants("why does my container keep restarting", PROBE, 3)
    assert any("liveness" in v for v in variants)
    assert "container keep restarting" in variants
    assert len(variants) == len(set(variants)) <= 3


async def test_expand_node_plans_original_plus_variants():
    out = await expand({"question": "container restarting", "probe": PROBE}, Runtime(context=Context()))
    queries = out["queries"]
    assert queries[0] == {"query": "container restarting", "purpose": "original", "filters": None}
    assert {q["purpose"] for q in queries[1:]} == {"variant"} and len(queries) >= 2
    assert out["trace"][0]["method"] == "prf"


async def test_expand_uses_llm_paraphrases_and_falls_back_on_failure():
    providers.register_chat_model(
        "fake:expand",
        ScriptedChatModel(script=[("search queries", '["pod restarts", "liveness probe failure"]')]),
    )
    out = await expand(
        {"question": "container restarting", "probe": PROBE}, Runtime(context=Context(llm="fake:expand"))
    )
    assert [q["query"] for q in out["queries"]] == [
        "container restarting",
        "pod restarts",
        "liveness probe failure",
    ]
    providers.register_chat_model("fake:expand-down", ScriptedChatModel(script=[], fail=True))
    down = await expand(
        {"question": "container restarting", "probe": PROBE}, Runtime(context=Context(llm="fake:expand-down"))
    )
    assert down["trace"][0]["method"] == "prf" and "expand" in down["degradations"][0]


def test_comparison_subquestions_one_per_item():
    q = "Which director had the longest career, Alain Resnais or Scott Sidney?"
    subs, rule = offline_subquestions(q, [], 4)
    assert rule == "comparison"
    assert subs == comparison_subquestions(q, ["Alain Resnais", "Scott Sidney"])
    assert subs[0].startswith("Alain Resnais") and "Scott" not in subs[0] and "career" in subs[0]


def test_bridge_entity_is_a_new_name_from_the_best_hop1_sentence():
    q = "Where is the hotel and casino located in which Bill Cosby's third album was recorded?"
    assert bridge_entities(q, BRIDGE_PROBE)[0] == "Sands Hotel"
    subs, rule = offline_subquestions(q, BRIDGE_PROBE, 4)
    assert rule == "bridge" and subs[0].startswith("Sands Hotel")


async def test_decompose_node_bridge_keeps_hop1_evidence_and_plans_hop2():
    q = "Where is the hotel and casino located in which Bill Cosby's third album was recorded?"
    out = await decompose({"question": q, "probe": BRIDGE_PROBE}, Runtime(context=Context()))
    assert out["retrievals"] == [{"query": q, "purpose": "hop1", "hits": BRIDGE_PROBE}]
    assert out["queries"][0]["purpose"] == "hop2" and "Sands Hotel" in out["queries"][0]["query"]


async def test_decompose_llm_subquestions():
    providers.register_chat_model(
        "fake:decomp", ScriptedChatModel(script=[("sub-questions", '["Who is A?", "Who is B?"]')])
    )
    out = await decompose(
        {"question": "Is A older than B?", "probe": []}, Runtime(context=Context(llm="fake:decomp"))
    )
    assert [q["query"] for q in out["queries"]] == ["Is A older than B?", "Who is A?", "Who is B?"]
    assert out["subquestions"] == ["Who is A?", "Who is B?"]
