"""The OpenAI-compatible API for real: the `openai` client against `ragroute serve`'s app on uvicorn
(loopback), its key sent as `Authorization: Bearer`: cited answers, streaming, the caller's scope, 401 and
clear 4xx errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from ragroute.server.app import create_app
from ragroute.server.policy import shown_source
from ragroute.tools.loaders import sample_corpus_dir

from tests.integration.sample_index import (
    PUBLIC_QUESTION,
    RUNBOOK_DOC,
    RUNBOOK_QUESTION,
    RUNBOOK_SECRET,
    free_port,
    ingest_sample,
    wait_http,
)

pytestmark = pytest.mark.integration

READER = "reader-key-0001"  # eng: public documents and eng's, not the ops runbook
OPS = "ops-key-0000002"  # ops, clearance 2: may read the runbook
NOBODY = "no-groups-key-03"  # no groups at all: public documents only
KEYS = {
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    OPS: {"user": "olga", "groups": ["ops"], "clearance": 2},
    NOBODY: {"user": "nina"},
}
LIMIT = 300  # max_question_chars, small so an over-long message is cheap to send


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("openai") / "index", embedder)
    yield index
    index.close()


@pytest.fixture(scope="module")
def base_url(sample_index: Any) -> Iterator[str]:
    """One real server per module: the app `ragroute serve` runs, on uvicorn on a free loopback port."""
    import uvicorn

    app = create_app(sample_index.path, KEYS, index=sample_index, tracing=False, max_question_chars=LIMIT)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", timeout=30)
    yield f"{url}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def client(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)


def ask(base_url: str, key: str, question: str, **kwargs: Any) -> Any:
    messages = [{"role": "user", "content": question}]
    return client(base_url, key).chat.completions.create(model="ragroute", messages=messages, **kwargs)


def streamed(base_url: str, key: str, question: str) -> tuple[str, list[Any]]:
    """The streamed answer's text and its chunks."""
    chunks = list(ask(base_url, key, question, stream=True))
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def test_models_lists_ragroute(base_url: str) -> None:
    models = client(base_url, READER).models.list()
    assert [m.id for m in models] == ["ragroute"]
    assert client(base_url, READER).models.retrieve("ragroute").id == "ragroute"
    with pytest.raises(openai.NotFoundError):
        client(base_url, READER).models.retrieve("gpt-4o")


def test_answer_has_its_citations(base_url: str) -> None:
    completion = ask(base_url, READER, PUBLIC_QUESTION, temperature=0.2, max_tokens=300, seed=1)
    assert completion.object == "chat.completion" and completion.model == "ragroute"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    text = choice.message.content or ""
    assert "90 days" in text and "[1]" in text
    assert "\n\nSources:\n[1] " in text and "(authentication.md)" in text
    extra = completion.model_extra["ragroute"]  # the structured citations beside the text
    assert "authentication.md" in {c["doc_id"] for c in extra["citations"]}
    assert extra["abstained"] is False and extra["faithfulness"] >= 0.5


def test_earlier_turns_and_text_parts(base_url: str) -> None:
    """The last user message is the question, also when sent as a list of text parts."""
    messages: list[Any] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How do I fail over the scheduler?"},
        {"role": "assistant", "content": "I cannot tell you that."},
        {"role": "user", "content": [{"type": "text", "text": PUBLIC_QUESTION}]},
    ]
    completion = client(base_url, READER).chat.completions.create(model="anything", messages=messages)
    assert "90 days" in (completion.choices[0].message.content or "")
    assert completion.model == "anything"  # the caller's model name is echoed


def test_stream_joins_to_the_answer_and_finishes(base_url: str) -> None:
    text, chunks = streamed(base_url, OPS, RUNBOOK_QUESTION)
    assert len(chunks) > 3 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert f"({RUNBOOK_DOC})" in text  # ops may read the runbook, and it is cited
    assert RUNBOOK_DOC in {c["doc_id"] for c in chunks[-1].model_extra["ragroute"]["citations"]}
    whole = ask(base_url, OPS, RUNBOOK_QUESTION).choices[0].message.content
    assert text == whole


@pytest.mark.parametrize("key", [NOBODY, READER])
def test_a_key_without_the_runbooks_groups_never_sees_it(base_url: str, key: str) -> None:
    completion = ask(base_url, key, RUNBOOK_QUESTION)
    text = completion.choices[0].message.content or ""
    assert RUNBOOK_SECRET not in completion.model_dump_json() and RUNBOOK_DOC not in text
    assert RUNBOOK_DOC not in {c["doc_id"] for c in completion.model_extra["ragroute"]["citations"]}
    text, chunks = streamed(base_url, key, RUNBOOK_QUESTION)
    assert RUNBOOK_SECRET not in text and RUNBOOK_DOC not in text
    assert RUNBOOK_SECRET not in "".join(c.model_dump_json() for c in chunks)


def test_a_wrong_or_missing_key_is_401(base_url: str) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        ask(base_url, "not-a-key-at-all", PUBLIC_QUESTION)
    assert err.value.status_code == 401 and err.value.message.endswith(" - invalid API key")
    assert isinstance(err.value.body, dict) and err.value.body["type"] == "authentication_error"
    r = httpx.post(f"{base_url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401 and r.json()["detail"] == "missing X-API-Key header"  # beside `error`
    assert r.json()["error"]["message"] == "missing X-API-Key header"
    # X-API-Key works as on every other route
    r = httpx.get(f"{base_url}/models", headers={"X-API-Key": READER})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "be brief"}]}, "no user message"),
        ({"messages": [{"role": "user", "content": "   "}]}, "content is empty"),
        ({"messages": [{"role": "user", "content": "x" * (LIMIT + 1)}]}, f"the limit is {LIMIT}"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "only text parts",
        ),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
        ({"n": 2}, "n=2"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"extra_body": {"filters": {"version": {"$regex": "x"}}}}, "filters"),
    ],
)
def test_bad_input_is_a_clear_4xx(base_url: str, kwargs: dict[str, Any], fragment: str) -> None:
    args: dict[str, Any] = {"model": "ragroute", "messages": [{"role": "user", "content": "hi"}], **kwargs}
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client(base_url, READER).chat.completions.create(**args)
    assert fragment in err.value.message
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"  # OpenAI's error shape


def test_the_guards_refusals_carry_an_openai_error(base_url: str) -> None:
    """What the guard refuses before any route (too deep, too big) reaches an OpenAI client as its message."""
    deep: Any = 1
    for _ in range(150):
        deep = [deep]
    with pytest.raises(openai.UnprocessableEntityError) as err:
        ask(base_url, READER, PUBLIC_QUESTION, extra_body={"filters": {"a": deep}})
    assert "nests deeper than" in err.value.message
    big = {"model": "ragroute", "messages": [{"role": "user", "content": "x" * 2_000_000}]}
    r = httpx.post(f"{base_url}/chat/completions", json=big, headers={"Authorization": f"Bearer {READER}"})
    assert r.status_code == 413 and r.json()["error"]["message"] == r.json()["detail"]
    assert "the limit is" in r.json()["detail"]


def test_no_response_names_a_file_on_the_server(base_url: str) -> None:
    """Citations show a source relative to the ingested folder (the doc id), never the server's path."""
    corpus = str(sample_corpus_dir())
    server = base_url.removesuffix("/v1")
    headers = {"X-API-Key": OPS}
    one = {"input": {"question": PUBLIC_QUESTION}}
    bodies = []
    for path, body in [
        ("/ask/invoke", one),
        ("/ask/batch", {"inputs": [{"question": PUBLIC_QUESTION}, {"question": RUNBOOK_QUESTION}]}),
        ("/ask/stream", one),
        ("/ask/stream_events", one),
        ("/ask/stream_log", one),
    ]:
        r = httpx.post(f"{server}{path}", json=body, headers=headers, timeout=120)
        assert r.status_code == 200, (path, r.text)
        bodies.append(r.text)
    citations = httpx.post(f"{server}/ask/invoke", json=one, headers=headers, timeout=120).json()["output"][
        "citations"
    ]
    assert "authentication.md" in [c["doc_id"] for c in citations]
    assert all(c["source"] == c["doc_id"] for c in citations)
    completion = ask(base_url, OPS, RUNBOOK_QUESTION)
    assert completion.model_extra and completion.model_extra["ragroute"]["citations"]
    bodies.append(completion.model_dump_json())
    bodies.append("".join(c.model_dump_json() for c in ask(base_url, OPS, PUBLIC_QUESTION, stream=True)))
    assert not [b[:200] for b in bodies if corpus in b]


def test_shown_source_keeps_non_file_sources() -> None:
    assert shown_source("/srv/corpus/guides/auth.md", "guides/auth.md") == "guides/auth.md"
    assert shown_source("/srv/corpus/records.jsonl", "rec-7") == "records.jsonl"
    assert shown_source("C:\\corpus\\faq.md", "faq.md") == "faq.md"
    for kept in ("api:faq", "upload:notes.md", "https://example.com/a.md", "guides/auth.md"):
        assert shown_source(kept, "x") == kept


def test_not_json_is_400(base_url: str) -> None:
    r = httpx.post(
        f"{base_url}/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {READER}", "content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


async def test_a_keyless_server_ignores_the_bearer_token(sample_index: Any) -> None:
    """OpenAI clients always send a key: without configured keys the caller is anonymous (public only)."""
    app = create_app(sample_index.path, {}, index=sample_index, tracing=False)
    transport = httpx.ASGITransport(app=app)
    url = "http://ragroute.test/v1"
    async with httpx.AsyncClient(transport=transport, base_url=url, timeout=120) as http:
        anon = openai.AsyncOpenAI(base_url=url, api_key="unused", http_client=http)
        messages: Any = [{"role": "user", "content": PUBLIC_QUESTION}]
        completion = await anon.chat.completions.create(model="ragroute", messages=messages)
        assert "90 days" in (completion.choices[0].message.content or "")
        messages = [{"role": "user", "content": RUNBOOK_QUESTION}]
        completion = await anon.chat.completions.create(model="ragroute", messages=messages)
        assert RUNBOOK_SECRET not in completion.model_dump_json()
