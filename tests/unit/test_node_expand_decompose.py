"""expand and decompose nodes: offline PRF variants / rule-based sub-questions, LLM paths, fallbacks."""

from __future__ import annotations

from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.decompose import comparison_subquestions, decompose, offline_subquestions
from ragroute.nodes.expand import expand, offline_variants, prf_terms
from ragroute.runtime.providers import Providers, using
from ragroute.tools.entities import bridge_entities

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
    model = ScriptedChatModel(script=[("search queries", '["pod restarts", "liveness probe failure"]')])
    with using(Providers(chat_model=model)):
        out = await expand(
            {"question": "container restarting", "probe": PROBE}, Runtime(context=Context(llm="fake:expand"))
        )
    assert [q["query"] for q in out["queries"]] == [
        "container restarting",
        "pod restarts",
        "liveness probe failure",
    ]
    with using(Providers(chat_model=ScriptedChatModel(script=[], fail=True))):
        down = await expand(
            {"question": "container restarting", "probe": PROBE},
            Runtime(context=Context(llm="fake:expand-down")),
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
    model = ScriptedChatModel(script=[("sub-questions", '["Who is A?", "Who is B?"]')])
    with using(Providers(chat_model=model)):
        out = await decompose(
            {"question": "Is A older than B?", "probe": []}, Runtime(context=Context(llm="fake:decomp"))
        )
    assert [q["query"] for q in out["queries"]] == ["Is A older than B?", "Who is A?", "Who is B?"]
    assert out["subquestions"] == ["Who is A?", "Who is B?"]


def _doc(cid: str, title: str, text: str) -> dict:
    return {"chunk_id": f"{cid}::0", "text": text, "metadata": {"title": title}, "score": 0.5}


KISS = (
    "What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?"
)
KISS_PROBE = [
    _doc(
        "film",
        "Kiss and Tell (1945 film)",
        "Kiss and Tell is a 1945 American comedy film starring Shirley Temple as Corliss Archer. "
        "It was directed by Richard Wallace.",
    ),
    _doc("sequel", "A Kiss for Corliss", "A Kiss for Corliss is a 1949 American comedy film."),
    _doc("actress", "Shirley Temple", "Shirley Temple Black was an actress and a diplomat."),
]


def test_hop2_searches_for_bridges_hop1_did_not_retrieve():
    subs, rule = offline_subquestions(KISS, KISS_PROBE, 4)
    assert rule == "bridge"
    assert subs and subs[0].startswith("Richard Wallace")  # Shirley Temple's page is already at hand
    assert not any(s.startswith("Shirley Temple") for s in subs)
    # nothing new to look for: the retrieved bridge is searched rather than nothing
    only = [KISS_PROBE[0], KISS_PROBE[2]]
    only[0] = {**only[0], "text": "Kiss and Tell is a comedy film starring Shirley Temple as Corliss Archer."}
    assert offline_subquestions(KISS, only, 4)[0][0].startswith("Shirley Temple")


def test_same_named_comparison_items_are_searched_once():
    q = "Which actor do American Beauty and American Beauty have in common?"
    subs, rule = offline_subquestions(q, [], 4)
    assert rule == "comparison" and len(subs) == 1 and subs[0].startswith("American Beauty")
