"""The circuit breaker: state transitions, half-open trials, which errors count, async calls, and a real
local HTTP server that keeps failing."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ragroute.tools.errors import ConfigError, InputError, ProviderError
from ragroute.tools.resilience import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    RETRYABLE_STATUS,
    CircuitBreaker,
    CircuitOpenError,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Fails `failures` times with `exc`, then returns "ok"."""

    def __init__(self, failures: int, exc: Exception | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.exc = exc or ProviderError("fake", "503 service unavailable")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return "ok"


# ------------------------------------------------------------------------------------------------ breaker


def test_breaker_state_transitions():
    clock = FakeClock()
    b = CircuitBreaker("llm", failure_threshold=3, reset_timeout_s=10, clock=clock)
    failing = Flaky(100)
    for _ in range(2):
        with pytest.raises(ProviderError):
            b.call(failing)
    assert b.state == CLOSED
    with pytest.raises(ProviderError):
        b.call(failing)
    assert b.state == OPEN
    with pytest.raises(CircuitOpenError, match="llm: circuit open.*retry in 10.0s"):
        b.call(failing)
    assert failing.calls == 3  # the open circuit did not call the provider
    clock.now = 9.9
    assert b.state == OPEN
    clock.now = 10
    assert b.state == HALF_OPEN
    with pytest.raises(ProviderError):  # the trial call fails -> open again, new timer
        b.call(failing)
    assert b.state == OPEN and failing.calls == 4
    clock.now = 20
    assert b.call(lambda: "fine") == "fine"  # trial succeeds -> closed
    assert b.state == CLOSED
    assert b.transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN),
                             (HALF_OPEN, CLOSED)]  # fmt: skip
    s = b.stats()
    assert (s["opened"], s["rejected"], s["failures"], s["successes"]) == (2, 1, 4, 1)


def test_half_open_allows_only_limited_trials_and_success_resets_count():
    clock = FakeClock()
    b = CircuitBreaker("x", failure_threshold=2, reset_timeout_s=1, clock=clock)
    b.record_failure()
    b.record_success()  # success resets the consecutive count
    b.record_failure()
    assert b.state == CLOSED
    b.record_failure()
    assert b.state == OPEN
    clock.now = 1
    assert b.allow() and not b.allow()  # one trial slot


def test_uncounted_errors_pass_through_without_opening():
    b = CircuitBreaker("x", failure_threshold=1)
    with pytest.raises(InputError):
        b.call(Flaky(1, InputError("bad filter")))
    assert b.state == CLOSED


async def test_async_breaker():
    clock = FakeClock()
    b = CircuitBreaker("emb", failure_threshold=1, reset_timeout_s=5, clock=clock)

    async def boom() -> None:
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        await b.acall(boom)
    with pytest.raises(CircuitOpenError):
        await b.acall(boom)

    async def ok() -> int:
        return 1

    clock.now = 5
    assert await b.acall(ok) == 1 and b.state == CLOSED


def test_breaker_validation():
    with pytest.raises(ConfigError, match="failure_threshold must be an int >= 1, got 0"):
        CircuitBreaker(failure_threshold=0)


# ------------------------------------------------------------------------------------ ---- real HTTP


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        srv = self.server
        with srv.lock:  # type: ignore[attr-defined]
            srv.hits += 1  # type: ignore[attr-defined]
            n = srv.hits  # type: ignore[attr-defined]
        status = 503 if n <= srv.fail_first else 200  # type: ignore[attr-defined]
        body = b"unavailable" if status == 503 else b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server(request) -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.hits = 0  # type: ignore[attr-defined]
    srv.lock = threading.Lock()  # type: ignore[attr-defined]
    srv.fail_first = request.param  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(5)


def _get(url: str) -> bytes:
    """A minimal provider client: HTTP errors become ProviderError with the status attached."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        err = ProviderError("http", f"{exc.code} {exc.reason}")
        err.status = exc.code  # type: ignore[attr-defined]
        raise err from None


@pytest.mark.integration
@pytest.mark.parametrize("http_server", [10**9], indirect=True)
def test_real_server_always_failing_opens_the_breaker_and_later_calls_fail_fast(http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/rerank"
    breaker = CircuitBreaker("http", failure_threshold=3, reset_timeout_s=60)
    errors = []
    for _ in range(5):
        with pytest.raises(ProviderError) as ei:
            breaker.call(_get, url)
        errors.append(ei.value)
    assert [getattr(e, "status", None) for e in errors[:3]] == [503, 503, 503]
    assert all(e.status in RETRYABLE_STATUS for e in errors[:3])  # type: ignore[attr-defined]
    assert all(isinstance(e, CircuitOpenError) for e in errors[3:])
    assert breaker.state == OPEN
    # 3 real requests opened the circuit; every later call failed fast without touching the server
    assert http_server.hits == 3
    s = breaker.stats()
    assert (s["failures"], s["rejected"], s["opened"]) == (3, 2, 1)


@pytest.mark.integration
@pytest.mark.parametrize("http_server", [1], indirect=True)
async def test_real_server_async_call_recovers_after_one_failure(http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/"
    breaker = CircuitBreaker("http", failure_threshold=2)

    async def aget() -> bytes:
        return await asyncio.to_thread(_get, url)

    with pytest.raises(ProviderError, match="503"):
        await breaker.acall(aget)
    assert await breaker.acall(aget) == b'{"ok": true}'
    assert http_server.hits == 2 and breaker.state == CLOSED
    assert breaker.stats()["consecutive_failures"] == 0
