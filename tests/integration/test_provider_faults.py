"""Provider faults against real local HTTP servers that fail on purpose (127.0.0.1, http.server):
an OpenAI-compatible chat endpoint returning 500 or hanging, a Cohere-compatible rerank endpoint returning
503. The answer degrades (extractive generator, fused order), the degradation is recorded, retries are
bounded, and after repeated failures the circuit opens so later runs do not wait on the provider."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ragroute.api import aask
from ragroute.runtime import providers

from tests.conftest import TINY_CORPUS

pytestmark = pytest.mark.integration

QUESTION = "How long do access tokens last before they expire?"


class FaultServer:
    """A local HTTP server whose behaviour (`mode`) the test sets: "ok", "500", "503" or "hang"."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                server.requests.append({"path": self.path, "body": body})
                if server.mode == "hang":
                    server.release.wait(30)
                    return
                if server.mode in ("500", "503"):
                    self._send(int(server.mode), {"error": {"message": f"injected {server.mode}"}})
                    return
                if self.path.endswith("/rerank"):
                    docs = body.get("documents") or []
                    # rank the documents in reverse, so a reordering is visible
                    results = [
                        {"index": i, "relevance_score": 1.0 - n / 100}
                        for n, i in enumerate(reversed(range(len(docs))))
                    ]
                    self._send(
                        200, {"id": "r1", "results": results, "meta": {"api_version": {"version": "2"}}}
                    )
                    return
                prompt = json.dumps(body.get("messages", []))
                content = (
                    "[1.0]"
                    if "For each numbered answer sentence" in prompt
                    else "Access tokens expire after 15 minutes [1]."
                )
                if body.get("stream"):
                    self._stream(content)
                    return
                self._send(
                    200,
                    {
                        "id": "c1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "x"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, content: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in (content, None):
                    delta = {"content": piece} if piece else {}
                    chunk = {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": "x",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None if piece else "stop"}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    providers.reset_breakers()
    yield srv
    srv.close()
    providers.reset_breakers()


@pytest.fixture
def tiny(make_index: Any) -> providers.Providers:
    return providers.Providers(index=make_index(TINY_CORPUS))


@pytest.fixture
def openai_at(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An llm spec whose OpenAI client points at the fault server (the cached model is dropped after)."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    spec = f"openai:fault-{server.port}"
    providers._chat_models.pop(spec, None)
    yield spec
    providers._chat_models.pop(spec, None)


@pytest.fixture
def cohere_at(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("COHERE_API_KEY", "test-key")
    monkeypatch.setenv("CO_API_URL", f"http://127.0.0.1:{server.port}")
    providers._rerankers.pop("cohere", None)
    yield
    providers._rerankers.pop("cohere", None)


def grounded(out: dict[str, Any]) -> None:
    assert not out["abstained"] and "15 minutes" in out["answer"], out["answer"]
    assert out["citations"] and out["citations"][0]["doc_id"] == "auth"


# --------------------------------------------------------------------------------------------- chat model


async def test_openai_endpoint_works_when_healthy(server, openai_at, tiny):
    out = await aask(QUESTION, providers=tiny, llm=openai_at, route="simple", reranker="none")
    assert out["generator"] == openai_at and out["degradations"] == []
    grounded(out)
    assert server.requests and server.requests[0]["path"] == "/v1/chat/completions"


async def test_openai_500_degrades_to_extractive_and_the_circuit_opens(server, openai_at, tiny):
    server.mode = "500"
    first = await aask(QUESTION, providers=tiny, llm=openai_at, route="simple", reranker="none")
    grounded(first)
    assert first["generator"] == "extractive-offline"
    assert any(d.startswith("generate:") and "500" in d for d in first["degradations"]), first["degradations"]
    assert any(d.startswith("verify:") for d in first["degradations"])
    # bounded retries: the SDK tries each call at most 3 times (generate + judge)
    assert 2 <= len(server.requests) <= 6, len(server.requests)
    for _ in range(2):
        out = await aask(QUESTION, providers=tiny, llm=openai_at, route="simple", reranker="none")
        grounded(out)
    calls = len(server.requests)
    assert providers.breaker(f"llm:{openai_at}").state == "open"
    started = time.monotonic()
    later = await aask(QUESTION, providers=tiny, llm=openai_at, route="simple", reranker="none")
    grounded(later)
    assert len(server.requests) == calls, "an open circuit must not call the provider"
    assert any("circuit open" in d for d in later["degradations"]), later["degradations"]
    assert time.monotonic() - started < 5


async def test_openai_hang_times_out_and_degrades(server, openai_at, tiny):
    server.mode = "hang"
    started = time.monotonic()
    out = await aask(
        QUESTION, providers=tiny, llm=openai_at, route="simple", reranker="none", llm_timeout_s=1.0
    )
    elapsed = time.monotonic() - started
    grounded(out)
    assert out["generator"] == "extractive-offline"
    assert any(d.startswith("generate:") and "Timeout" in d for d in out["degradations"]), out["degradations"]
    assert elapsed < 8, elapsed  # generate and judge each waited about llm_timeout_s, not the SDK's 600 s


async def test_strict_mode_raises_the_provider_failure(server, openai_at, tiny):
    from ragroute.tools.errors import ProviderError

    server.mode = "500"
    with pytest.raises(ProviderError):
        await aask(QUESTION, providers=tiny, llm=openai_at, route="simple", reranker="none", strict=True)


# ----------------------------------------------------------------------------------------------- reranker


async def test_cohere_endpoint_reranks_when_healthy(server, cohere_at, tiny):
    out = await aask(QUESTION, providers=tiny, reranker="cohere", route="simple")
    assert out["degradations"] == [] and len(server.requests) == 1
    assert server.requests[0]["path"] == "/v2/rerank" and server.requests[0]["body"]["query"] == QUESTION
    # the server ranked the fused list backwards: the context starts with the fused list's last candidate
    reranked = server.requests[0]["body"]["documents"]
    assert len(reranked) >= 2 and out["contexts"][0] != out["retrieved"][0]


async def test_cohere_503_keeps_fused_order_and_the_circuit_opens(server, cohere_at, tiny):
    server.mode = "503"
    out = await aask(QUESTION, providers=tiny, reranker="cohere", route="simple")
    grounded(out)
    assert any(d.startswith("rerank (cohere)") and "503" in d for d in out["degradations"]), out[
        "degradations"
    ]
    assert out["contexts"][0] == out["retrieved"][0]  # fused order kept
    assert 1 <= len(server.requests) <= 2  # bounded: one SDK retry
    for _ in range(2):
        await aask(QUESTION, providers=tiny, reranker="cohere", route="simple")
    calls = len(server.requests)
    later = await aask(QUESTION, providers=tiny, reranker="cohere", route="simple")
    grounded(later)
    assert len(server.requests) == calls
    assert any("circuit open" in d for d in later["degradations"]), later["degradations"]
    # recovery: after the reset timeout one trial call goes through and closes the circuit
    server.mode = "ok"
    providers.breaker("rerank:cohere").reset_timeout_s = 0.0
    healed = await aask(QUESTION, providers=tiny, reranker="cohere", route="simple")
    assert healed["degradations"] == [] and providers.breaker("rerank:cohere").state == "closed"


async def test_unreachable_cohere_degrades(cohere_at, tiny, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CO_API_URL", f"http://127.0.0.1:{port}")
    providers._rerankers.pop("cohere", None)
    out = await aask(QUESTION, providers=tiny, reranker="cohere", route="simple")
    grounded(out)
    assert any(d.startswith("rerank (cohere)") for d in out["degradations"]), out["degradations"]
    assert providers.is_transient_failure(ConnectionRefusedError())
