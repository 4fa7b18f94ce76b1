"""The offline support check (tools/faithfulness): a claim naming a command, flag, setting, number or name
its cited source lacks, or contradicting the source's negation, is rejected; supported paraphrases pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.nodes.verify import verify
from ragroute.runtime import providers
from ragroute.runtime.providers import Providers, using
from ragroute.tools.faithfulness import UNGROUNDED_CAP, score_answer, ungrounded
from ragroute.tools.loaders import sample_corpus_dir

from tests.node_fakes import ScriptedChatModel

THRESHOLD = Context().faithfulness_threshold
LABELLED = Path(__file__).resolve().parents[2] / "evals" / "data" / "hallucination_set.jsonl"
FIRST_WORKFLOW = (
    "Create a file named `hello.yaml` that declares one task, then register it with "
    "`orbit apply hello.yaml`. "
    "Trigger a run with `orbit run hello` and follow its logs with `orbit logs hello --follow`."
)


def sources(text: str, title: str = "Orbit Getting Started Guide") -> list[dict]:
    return [{"n": 1, "doc_id": "d", "title": title, "text": text}]


def support(claim: str, text: str) -> float:
    return score_answer(f"{claim} [1]", sources(text), providers.embedder())[0].support


def test_the_orbit_log_hallucination_is_rejected_offline():
    # the SmolLM2 answer that passed at 0.73: fluent, on topic, and the command is in no source
    text = (sample_corpus_dir() / "getting-started.md").read_text()
    [claim] = score_answer(
        "Use the `orbit-log` command to follow a run's logs [1].", sources(text), providers.embedder()
    )
    assert claim.ungrounded == ["orbit-log"]
    assert claim.support <= UNGROUNDED_CAP < THRESHOLD
    assert 0.5 * claim.similarity + 0.5 * claim.coverage >= THRESHOLD  # similarity + coverage alone passed it


@pytest.mark.parametrize(
    "claim",
    [
        "Follow a run's logs with `orbit logs hello -f`.",  # invented flag
        "Register the workflow with `orbit workflow add hello.yaml`.",  # invented subcommand
        "Trigger a run with `orbit start hello`.",
    ],
)
def test_invented_commands_and_flags_are_rejected(claim):
    assert support(claim, FIRST_WORKFLOW) < THRESHOLD


@pytest.mark.parametrize(
    "claim",
    [
        "Follow its logs with `orbit logs hello --follow`.",
        "Register the workflow file by running `orbit apply hello.yaml`.",
        "You register the hello.yaml file with orbit apply, then start it with `orbit run hello`.",
    ],
)
def test_commands_from_the_source_in_other_words_are_accepted(claim):
    assert support(claim, FIRST_WORKFLOW) >= THRESHOLD


def test_numbers_names_and_negations_must_match_the_source():
    faq = "Windows workers are supported since version 2.4 and run tasks in PowerShell or cmd."
    assert ungrounded("Windows workers run tasks in PowerShell or cmd.", faq) == []
    assert ungrounded("Windows workers run tasks inside WSL.", faq) == ["WSL"]
    assert ungrounded("Windows workers are supported since version 2.6.", faq) == ["2.6"]
    assert ungrounded("Windows workers are not supported.", faq, faq) == ["negation"]
    notes = "Python task runtime 3.8 is no longer supported; the minimum is Python 3.10."
    assert ungrounded("Python 3.8 is supported as a task runtime.", notes, notes) == ["negation"]
    assert ungrounded("Python 3.8 can no longer be used; use 3.10 or newer.", notes, notes) == []


def test_number_words_spacing_and_acronyms_are_not_mistaken_for_new_facts():
    runbook = "If no runs start for more than five minutes, check the scheduler heartbeat."
    assert ungrounded("Check the heartbeat when no runs start for over 5 minutes.", runbook) == []
    congress = "Each senator is elected at - large in their state for a six - year term ."
    assert ungrounded("A senator serves a six-year term.", congress) == []
    assert ungrounded("A senator serves a four-year term.", congress) == ["four-year", "4"]
    tls = "Service calls use mutual transport layer security between workers."
    assert ungrounded("Workers talk over mutual TLS.", tls) == []
    rate = "The default limit is 1,000 requests per minute per token."
    assert ungrounded("Each token may send 1000 requests a minute.", rate) == []


def test_verbatim_sentences_are_never_flagged():
    text = "Date January 24 , 1848 ( 1848 - 01 - 24 ) -- 1855 Location Sierra Nevada ﻿ / ﻿ 38.80250 ° N"
    [copied] = score_answer(f"{text} [1]", sources(text, "California Gold Rush"), providers.embedder())
    assert copied.ungrounded == [] and copied.support == 1.0


def test_labelled_set_specifics_separate_supported_from_invented():
    """String rules alone (no model): no supported item is flagged, every invented specific is."""
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]
    assert len(rows) >= 40
    for row in rows:
        text = f"{row['source_title']} {row['source']}"
        found = ungrounded(row["answer"], text)
        if row["label"] == "supported":
            assert found == [], row
        elif row["kind"].startswith("invented_") and row["kind"] != "invented_fact":
            assert found, row


async def test_a_judge_that_certifies_an_invented_command_is_capped():
    judge = ScriptedChatModel(script=[("answer sentence", '{"scores": [1.0]}')])
    state = {
        "question": "How do I follow a run's logs?",
        "answer": "Use the `orbit-log` command to follow a run's logs [1].",
        "sources": sources(FIRST_WORKFLOW),
    }
    with using(Providers(chat_model=judge)):
        out = await verify(state, Runtime(context=Context(llm="fake:judge", max_retries=0)))
    [claim] = out["support"]
    assert claim["judge"] == "llm" and claim["judge_score"] == 1.0
    assert claim["support"] <= UNGROUNDED_CAP and out["answer"] != state["answer"]  # abstained
