"""condense node: offline follow-up rules (detection and combination), the LLM rewrite with its fallback,
and what classify carries over from it into the run's trace, usage and degradations."""

from __future__ import annotations

import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.classify import classify
from ragroute.nodes.condense import combine, condense, follow_up_reason, previous_question
from ragroute.runtime.providers import Providers, using

from tests.node_fakes import FakeIndex, ScriptedChatModel

PREVIOUS = "What is the default task timeout in version 2.10.0?"
HISTORY = [
    {"role": "user", "content": "default timeout in 2.10.0?", "standalone": PREVIOUS},
    {"role": "assistant", "content": "The default task timeout is now 2 hours [1].", "doc_ids": ["rn-2.10"]},
]


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("And what about version 2.9.1?", "starts with a connective"),
        ("what about 2.9.1?", "asks 'what about ...'"),
        ("How about the scheduler?", "asks 'what about ...'"),
        ("How do I revoke it?", "refers back with a pronoun"),
        ("version 2.9.1?", "is a fragment"),
        # standalone questions, also ones with a pronoun among enough words of their own
        ("What is the maximum lifetime of an API token?", ""),
        ("How do I fail over the scheduler when the heartbeat is stale?", ""),
        ("Can two schedulers run at the same time?", ""),
        ("Is there a rate limit on the public API?", ""),
        ("Which config key sets it for the Orbit worker pool?", ""),
    ],
)
def test_follow_up_detection(question, reason):
    assert follow_up_reason(question) == reason


@pytest.mark.parametrize(
    ("question", "standalone"),
    [
        # a fragment repeating a word of the previous question with a new value replaces that value
        ("And what about version 2.9.1?", "What is the default task timeout in version 2.9.1?"),
        ("version 2.9.1", "What is the default task timeout in version 2.9.1?"),
        # a bare number replaces the previous question's last number
        ("what about 2.9.1?", "What is the default task timeout in version 2.9.1?"),
        # otherwise the previous question's content words the new one lacks are carried over
        ("And how do I change it?", "How do I change it (default task timeout version 2.10.0)?"),
        ("What about retries?", "Retries (default task timeout version 2.10.0)?"),
        # the shared word may be followed by more than a value: the rest of the previous question is replaced
        ("and the timeout of a workflow?", "What is the default task timeout of a workflow?"),
    ],
)
def test_combine_with_the_previous_question(question, standalone):
    assert combine(question, PREVIOUS) == standalone


def test_previous_question_is_the_last_standalone_user_turn():
    assert previous_question(HISTORY) == PREVIOUS
    assert previous_question([{"role": "user", "content": "plain"}]) == "plain"
    assert previous_question([]) == ""


async def test_node_rewrites_a_follow_up_and_keeps_the_words_as_asked(tmp_path):
    out = await condense(
        {"question": "  And what about version 2.9.1? ", "history": HISTORY},
        Runtime(context=Context(index_dir=str(tmp_path))),
    )
    assert out["question"] == "What is the default task timeout in version 2.9.1?"
    assert out["asked"] == "And what about version 2.9.1?"
    assert out["trace"] == [
        {
            "node": "condense",
            "asked": "And what about version 2.9.1?",
            "standalone": "What is the default task timeout in version 2.9.1?",
            "reason": "starts with a connective",
        }
    ]
    assert out["condensed"]["trace"] == out["trace"] and out["timings"]["condense"] >= 0


async def test_node_leaves_a_standalone_question_alone(tmp_path):
    question = "What is the maximum lifetime of an API token?"
    out = await condense(
        {"question": question, "history": HISTORY}, Runtime(context=Context(index_dir=str(tmp_path)))
    )
    assert out["question"] == out["asked"] == question
    assert out["trace"][0]["reason"] == "stands on its own"


async def test_node_redacts_the_question_as_asked_when_asked_to(tmp_path):
    out = await condense(
        {"question": "and for jane.doe@example.com?", "history": HISTORY},
        Runtime(context=Context(index_dir=str(tmp_path), redact_query_pii=True)),
    )
    assert "jane.doe@example.com" not in str(out)


async def test_llm_rewrite_and_fallback_on_a_bad_reply(tmp_path):
    good = ScriptedChatModel(
        script=[
            (
                "Conversation so far",
                '{"standalone": "Default task timeout in Orbit 2.9.1?", "follow_up": true}',
            )
        ]
    )
    with using(Providers(chat_model=good)):
        ok = await condense(
            {"question": "and 2.9.1?", "history": HISTORY},
            Runtime(context=Context(index_dir=str(tmp_path), llm="fake:condense-ok")),
        )
    assert ok["question"] == "Default task timeout in Orbit 2.9.1?" and ok["usage"]["prompt_tokens"] == 100
    assert PREVIOUS in good.prompts[0] and "New question: and 2.9.1?" in good.prompts[0]
    bad = ScriptedChatModel(script=[("Conversation so far", "no idea")])
    with using(Providers(chat_model=bad)):
        fell_back = await condense(
            {"question": "and 2.9.1?", "history": HISTORY},
            Runtime(context=Context(index_dir=str(tmp_path), llm="fake:condense-bad")),
        )
    assert fell_back["question"] == "What is the default task timeout in version 2.9.1?"
    assert fell_back["degradations"][0].startswith("condense") and "offline" in fell_back["degradations"][0]


async def test_classify_keeps_what_condense_wrote_for_this_run(tmp_path):
    model = ScriptedChatModel(
        script=[
            ("Conversation so far", '{"standalone": "Default task timeout in 2.9.1?"}'),
            ("Decide how to retrieve", '{"route": "simple", "reason": "one fact"}'),
        ]
    )
    index = FakeIndex([("a::0", "a", "The default task timeout is 1 hour.", {"title": "2.9.1"})])
    context = Context(index_dir=str(tmp_path), llm="fake:condense-classify")
    with using(Providers(index=index, chat_model=model)):
        state = {"question": "and 2.9.1?", "history": HISTORY, "trace": [{"node": "finalize"}]}
        state.update(await condense(state, Runtime(context=context)))
        out = await classify(state, Runtime(context=context))
    assert [t["node"] for t in out["trace"].value] == ["condense", "classify"]  # the old run's trace is gone
    assert out["usage"].value["prompt_tokens"] == 200  # condense's and classify's model calls
    assert set(out["timings"].value) == {"condense", "classify"}
    # a run without history (a first question) starts with classify's note only, whatever state says
    with using(Providers(index=index, chat_model=model)):
        first = await classify({**state, "history": []}, Runtime(context=context))
    assert [t["node"] for t in first["trace"].value] == ["classify"]
