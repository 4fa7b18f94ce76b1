"""generate and verify nodes: extractive and LLM answers, citation repair, outdated-source notes,
abstention, faithfulness retry then abstain, LLM judge."""

from __future__ import annotations

from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.generate import generate
from ragroute.nodes.verify import verify
from ragroute.runtime import providers
from ragroute.runtime.providers import Providers, using
from ragroute.state import ABSTAIN_TEXT

from tests.node_fakes import ScriptedChatModel

SOURCES = [
    {
        "n": 1,
        "chunk_id": "auth::c0",
        "doc_id": "auth",
        "title": "Authentication guide",
        "section": "Tokens",
        "text": "Access tokens expire after 15 minutes. Refresh tokens last 30 days.",
        "metadata": {"version": "2.10.0", "last_updated": "2025-03-01", "doc_type": "technical"},
    },
    {
        "n": 2,
        "chunk_id": "cats::c0",
        "doc_id": "cats",
        "title": "Office pets",
        "section": "",
        "text": "The office cat sleeps on the warm server rack; please do not feed her tuna.",
        "metadata": {},
    },
]
QUESTION = "How long do access tokens last before they expire?"


def rt(**kw) -> Runtime:
    return Runtime(context=Context(**kw))


async def test_extractive_answer_cites_the_supporting_sentence():
    out = await generate({"question": QUESTION, "sources": SOURCES}, rt(stale_after_days=100000))
    assert out["generator"] == "extractive-offline" and not out["abstained"]
    assert out["answer"].startswith("Access tokens expire after 15 minutes [1].")
    assert out["draft_citations"] == [1] and "tuna" not in out["answer"]


async def test_extractive_abstains_when_nothing_supports_an_answer():
    out = await generate({"question": "What is the capital of Mongolia?", "sources": SOURCES}, rt())
    assert out["answer"] == ABSTAIN_TEXT and out["abstained"] and out["draft_citations"] == []
    empty = await generate({"question": QUESTION, "sources": []}, rt())
    assert empty["answer"] == ABSTAIN_TEXT


async def test_an_old_unversioned_source_gets_a_dated_note():
    undated_version = [{**SOURCES[0], "metadata": {"last_updated": "2025-03-01"}}, SOURCES[1]]
    out = await generate({"question": QUESTION, "sources": undated_version}, rt(stale_after_days=30))
    assert out["answer"].endswith("Note: source [1] is last updated 2025-03-01; may be outdated.")


async def test_the_only_version_of_a_document_is_not_called_outdated():
    """Issue 12: its version is the newest there is, however old its date."""
    out = await generate({"question": QUESTION, "sources": SOURCES}, rt(stale_after_days=30))
    assert not out["abstained"] and "Note:" not in out["answer"] and "outdated" not in out["answer"]


async def test_llm_answer_citations_are_repaired():
    reply = (
        "Access tokens expire after 15 minutes [7]. Refresh tokens last 30 days. "
        "Tokens are signed with quantum keys."
    )
    model = ScriptedChatModel(script=[("Answer:", reply)])
    with using(Providers(chat_model=model)):
        out = await generate(
            {"question": QUESTION, "sources": SOURCES}, rt(llm="fake:gen-repair", stale_after_days=100000)
        )
    assert out["generator"] == "fake:gen-repair"
    assert out["answer"] == "Access tokens expire after 15 minutes [1]. Refresh tokens last 30 days [1]."
    assert out["draft_citations"] == [1]
    repairs = out["trace"][0]["repairs"]
    assert any("unknown citation" in r for r in repairs) and any("dropped" in r for r in repairs)
    assert "[1] Authentication guide — Tokens (version 2.10.0, updated 2025-03-01)" in model.prompts[-1]
    assert out["usage"]["prompt_tokens"] == 100 and out["usage"]["completion_tokens"] == 20


async def test_llm_abstention_and_llm_failure_fallback():
    with using(Providers(chat_model=ScriptedChatModel(script=[("Answer:", ABSTAIN_TEXT)]))):
        out = await generate({"question": QUESTION, "sources": SOURCES}, rt(llm="fake:gen-abstain"))
    assert out["abstained"] and out["answer"] == ABSTAIN_TEXT
    with using(Providers(chat_model=ScriptedChatModel(script=[], fail=True))):
        down = await generate({"question": QUESTION, "sources": SOURCES}, rt(llm="fake:gen-down"))
    assert down["generator"] == "extractive-offline" and "[1]" in down["answer"]
    assert "generate" in down["degradations"][0] and "extractive" in down["degradations"][0]


async def test_verify_passes_a_faithful_answer():
    state = {"question": QUESTION, "sources": SOURCES, "answer": "Access tokens expire after 15 minutes [1]."}
    out = await verify(state, rt())
    assert out["faithfulness"] > 0.9 and out["trace"][0]["verdict"] == "faithful"
    assert 0 < out["confidence"] <= 1 and "attempt" not in out


async def test_verify_retries_then_abstains_on_unsupported_claims():
    bad = {
        "question": QUESTION,
        "sources": SOURCES,
        "answer": "The cat approves every production deployment [2].",
    }
    first = await verify({**bad, "attempt": 0}, rt())
    assert first["trace"][0]["verdict"] == "retry" and first["attempt"] == 1
    assert first["faithfulness"] < 0.5
    second = await verify({**bad, "attempt": 1}, rt())
    assert second["trace"][0]["verdict"] == "abstain"
    assert second["answer"] == ABSTAIN_TEXT and second["abstained"] and second["draft_citations"] == []
    no_retry = await verify({**bad, "attempt": 0}, rt(max_retries=0))
    assert no_retry["abstained"]


async def test_verify_with_llm_judge_and_its_fallback():
    state = {"question": QUESTION, "sources": SOURCES, "answer": "Access tokens expire after 15 minutes [1]."}
    with using(Providers(chat_model=ScriptedChatModel(script=[("answer sentence", "[0.1]")]))):
        judged = await verify(state, rt(llm="fake:judge-no"))
    assert judged["trace"][0]["judge"] == "llm" and judged["trace"][0]["verdict"] == "retry"
    with using(Providers(chat_model=ScriptedChatModel(script=[("answer sentence", "yes!")]))):
        fallback = await verify(state, rt(llm="fake:judge-bad"))
    assert fallback["trace"][0]["judge"] == "offline" and fallback["trace"][0]["verdict"] == "faithful"
    assert "verify" in fallback["degradations"][0]


def test_support_of_a_verbatim_sentence_needs_no_model_call_but_a_paraphrase_does():
    from ragroute.tools.faithfulness import score_answer

    calls: list[list[str]] = []

    def embed(texts: list[str]):
        calls.append(texts)
        return providers.embedder()(texts)

    copied = score_answer("Access tokens expire after 15 minutes. [1]", SOURCES, embed)
    assert calls == [] and copied[0].similarity == 1.0 and copied[0].support == 1.0
    paraphrase = score_answer("Tokens for access stop working after a quarter hour. [1]", SOURCES, embed)
    assert len(calls) == 1 and 0.0 < paraphrase[0].similarity < 1.0
    unrelated = score_answer("The office cat likes tuna. [1]", SOURCES, embed)
    assert unrelated[0].support < paraphrase[0].support


async def test_verify_keeps_the_extractive_answers_answerability_as_its_confidence():
    state = {"question": QUESTION, "sources": SOURCES}
    drafted = await generate(state, rt())
    assert drafted["generator"] == "extractive-offline" and not drafted["abstained"]
    merged = {**state, **drafted}
    out = await verify(merged, rt())
    assert out["trace"][0]["verdict"] == "faithful"
    assert {**merged, **out}["confidence"] == drafted["confidence"]  # P(answerable), not overwritten


async def test_verify_sets_the_confidence_of_an_llm_answer():
    state = {
        "question": QUESTION,
        "sources": SOURCES,
        "answer": "Access tokens expire after 15 minutes [1].",
        "generator": "fake:gen",
        "confidence": 0.123,  # left over from an earlier extractive attempt: not the LLM answer's
    }
    out = await verify(state, rt())
    assert out["trace"][0]["verdict"] == "faithful" and out["confidence"] not in (None, 0.123)
