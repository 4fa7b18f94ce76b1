"""Retries with backoff, timeouts, the circuit breaker and fallbacks, including a real local HTTP server."""

from __future__ import annotations

import asyncio
import random
import threading
import time
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
    CallTimeout,
    CircuitBreaker,
    CircuitOpenError,
    RetryPolicy,
    acall_with_fallback,
    acall_with_timeout,
    aguarded_call,
    aretry_call,
    call_with_fallback,
    call_with_timeout,
    degradation_message,
    guarded_call,
    is_transient,
    retry_call,
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


# ------------------------------------------------------------------------------------------------ retries


def test_backoff_sequence_without_jitter():
    p = RetryPolicy(max_attempts=6, base_delay_s=0.5, multiplier=2, max_delay_s=3, jitter=0)
    assert p.delays() == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_bounds_and_varies():
    p = RetryPolicy(max_attempts=50, base_delay_s=1, multiplier=1, max_delay_s=1, jitter=0.25)
    delays = p.delays(random.Random(1))
    assert all(0.75 <= d <= 1.25 for d in delays)
    assert len(set(delays)) > 40


def test_retry_succeeds_after_transient_failures_and_sleeps_per_policy():
    sleeps: list[float] = []
    seen: list[tuple[int, str]] = []
    fn = Flaky(2)
    p = RetryPolicy(max_attempts=4, base_delay_s=0.1, multiplier=3, jitter=0)
    out = retry_call(
        fn, policy=p, sleep=sleeps.append, on_retry=lambda n, e, w: seen.append((n, type(e).__name__))
    )
    assert out == "ok" and fn.calls == 3
    assert sleeps == pytest.approx([0.1, 0.3])
    assert seen == [(1, "ProviderError"), (2, "ProviderError")]


def test_retry_is_bounded_and_reraises_last_error():
    sleeps: list[float] = []
    fn = Flaky(10)
    with pytest.raises(ProviderError, match="503"):
        retry_call(fn, policy=RetryPolicy(max_attempts=3, jitter=0), sleep=sleeps.append)
    assert fn.calls == 3 and len(sleeps) == 2


def test_user_errors_and_4xx_are_not_retried():
    fn = Flaky(5, InputError("bad query"))
    with pytest.raises(InputError):
        retry_call(fn, policy=RetryPolicy(max_attempts=5), sleep=lambda s: None)
    assert fn.calls == 1
    e400 = ProviderError("llm", "400 bad request")
    e400.status = 400  # type: ignore[attr-defined]
    e429 = ProviderError("llm", "429 rate limited")
    e429.status = 429  # type: ignore[attr-defined]
    assert not is_transient(e400) and is_transient(e429) and is_transient(TimeoutError())
    odd = ProviderError("llm", "weird")
    odd.status_code = "n/a"  # type: ignore[attr-defined]
    assert is_transient(odd)
    assert not is_transient(CircuitOpenError("x", "open"))


async def test_async_retry_uses_async_sleep():
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("reset")
        return "ok"

    p = RetryPolicy(max_attempts=3, base_delay_s=1, jitter=0)
    assert await aretry_call(fn, policy=p, sleep=fake_sleep) == "ok"
    assert calls == 3 and sleeps == [1.0, 2.0]


def test_policy_validation():
    with pytest.raises(ConfigError, match="max_attempts must be an int >= 1, got 0"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigError, match="jitter must be between 0 and 1"):
        RetryPolicy(jitter=2)
    with pytest.raises(ConfigError, match="multiplier"):
        RetryPolicy(multiplier=0.5)


# ----------------------------------------------------------------------------------------------- timeouts


def test_sync_timeout_raises_call_timeout():
    t0 = time.monotonic()
    with pytest.raises(CallTimeout, match="slow: no result within 0.05s") as ei:
        call_with_timeout(time.sleep, 0.05, 2, name="slow")
    assert time.monotonic() - t0 < 1.0
    assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, ProviderError)
    assert call_with_timeout(lambda x: x * 2, 1, 21) == 42
    with pytest.raises(ZeroDivisionError):  # the worker's own exception reaches the caller unchanged
        call_with_timeout(lambda: 1 / 0, 1)
    with pytest.raises(ConfigError, match="timeout_s must be a number > 0"):
        call_with_timeout(lambda: 1, 0)


async def test_async_timeout_cancels_the_call():
    cancelled = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    with pytest.raises(CallTimeout, match="no result within 0.05s"):
        await acall_with_timeout(slow, 0.05)
    assert cancelled.is_set()

    async def fast(x: int) -> int:
        return x + 1

    assert await acall_with_timeout(fast, 1, 1) == 2


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


# ---------------------------------------------------------------------------------------------- fallback


def test_fallback_records_degradation():
    degradations: list[str] = []

    def cohere_rerank() -> list[str]:
        raise ProviderError("cohere", "503 service unavailable")

    def local_rerank() -> list[str]:
        return ["c2", "c1"]

    out = call_with_fallback(cohere_rerank, local_rerank, on_degrade=degradations, name="rerank:cohere")
    assert out == ["c2", "c1"]
    assert degradations == [
        "rerank:cohere: ProviderError (cohere: 503 service unavailable); fell back to local_rerank"
    ]
    # no failure -> no degradation
    assert call_with_fallback(lambda: 1, lambda: 2, on_degrade=degradations) == 1
    assert len(degradations) == 1


def test_fallback_does_not_hide_user_errors_or_fallback_failures():
    seen: list[str] = []
    with pytest.raises(InputError):
        call_with_fallback(Flaky(1, InputError("empty query")), lambda: "x", on_degrade=seen.append)
    assert seen == []
    with pytest.raises(ValueError, match="fallback broke"):
        call_with_fallback(Flaky(1), Flaky(1, ValueError("fallback broke")), on_degrade=seen.append)
    assert len(seen) == 1


async def test_async_fallback_and_sync_entry_point_with_async_callables():
    seen: list[str] = []

    async def llm() -> str:
        raise CallTimeout("llm", "no result within 30s")

    async def extractive() -> str:
        return "extractive answer"

    assert await call_with_fallback(llm, extractive, on_degrade=seen, name="generate") == "extractive answer"
    assert seen == ["generate: CallTimeout (llm: no result within 30s); fell back to extractive"]
    # a lambda returning a coroutine is detected too, and a sync fallback is fine
    assert await call_with_fallback(lambda: llm(), lambda: "plain", on_degrade=seen) == "plain"
    assert await acall_with_fallback(extractive, lambda: "unused", on_degrade=seen) == "extractive answer"
    assert len(seen) == 2


def test_degradation_message_is_one_line():
    msg = degradation_message("x", ProviderError("p", "line one\nline two"), "y")
    assert "\n" not in msg and msg == "x: ProviderError (p: line one); fell back to y"


# ------------------------------------------------------------------------------------ composed + real HTTP


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
@pytest.mark.parametrize("http_server", [2], indirect=True)
def test_real_server_503_twice_then_200_retries_succeed(http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/rerank"
    sleeps: list[float] = []
    breaker = CircuitBreaker("http", failure_threshold=5)
    body = guarded_call(
        _get, url, breaker=breaker, policy=RetryPolicy(max_attempts=4, base_delay_s=0.01, jitter=0),
        timeout_s=5, sleep=sleeps.append,
    )  # fmt: skip
    assert body == b'{"ok": true}'
    assert http_server.hits == 3
    assert sleeps == [0.01, 0.02]
    assert breaker.state == CLOSED and breaker.stats()["failures"] == 2


@pytest.mark.integration
@pytest.mark.parametrize("http_server", [10**9], indirect=True)
def test_real_server_always_failing_opens_the_breaker_and_falls_back(http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/rerank"
    breaker = CircuitBreaker("http", failure_threshold=3, reset_timeout_s=60)
    policy = RetryPolicy(max_attempts=2, base_delay_s=0, jitter=0)
    degradations: list[str] = []
    results = [
        call_with_fallback(
            lambda: guarded_call(_get, url, breaker=breaker, policy=policy, sleep=lambda s: None),
            lambda: b"local",
            on_degrade=degradations,
            name="rerank:http",
        )
        for _ in range(4)
    ]
    assert results == [b"local"] * 4
    assert breaker.state == OPEN
    # 3 real requests opened the circuit; every later call failed fast without touching the server
    assert http_server.hits == 3
    assert any("CircuitOpenError" in d for d in degradations[-2:])
    assert len(degradations) == 4


@pytest.mark.integration
@pytest.mark.parametrize("http_server", [1], indirect=True)
async def test_real_server_async_guarded_call(http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/"

    async def aget() -> bytes:
        return await asyncio.to_thread(_get, url)

    async def no_sleep(_: float) -> None:
        return None

    body = await aguarded_call(aget, policy=RetryPolicy(max_attempts=3), timeout_s=5, sleep=no_sleep)
    assert body == b'{"ok": true}' and http_server.hits == 2
