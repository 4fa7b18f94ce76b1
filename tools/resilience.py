"""Fault handling for provider calls: bounded retries with backoff and jitter, timeouts, a circuit breaker,
and a fallback helper that records what degraded. Every piece works for sync and async callables, and
takes an injectable clock/sleep so tests run without waiting.

Typical composition (retry around breaker around timeout), with a local fallback:

    breaker = CircuitBreaker("cohere", failure_threshold=5, reset_timeout_s=30)
    hits = call_with_fallback(
        lambda: guarded_call(cohere_rerank, q, docs, breaker=breaker, policy=RetryPolicy(), timeout_s=5),
        lambda: local_rerank(q, docs),
        on_degrade=state_degradations,   # a list, or any callable taking the message
        name="rerank:cohere",
    )
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableSequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ragroute.tools.errors import ConfigError, ProviderError

T = TypeVar("T")

# Failures worth retrying / counting against a provider. A user mistake (InputError, ConfigError) is not.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ProviderError, TimeoutError, ConnectionError, OSError)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class CallTimeout(ProviderError, TimeoutError):
    """A provider call did not finish within its time limit."""


class CircuitOpenError(ProviderError):
    """The circuit breaker for a provider is open: the call was not attempted."""


def is_transient(exc: BaseException) -> bool:
    """True when `exc` is worth retrying: a transient error type whose HTTP status (if any) is retryable."""
    if isinstance(exc, CircuitOpenError) or not isinstance(exc, TRANSIENT_ERRORS):
        return False
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if status is None:
        return True
    try:
        return int(status) in RETRYABLE_STATUS
    except (TypeError, ValueError):
        return True  # an unreadable status says nothing against retrying


# ------------------------------------------------------------------------------------------------ retries


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: `max_attempts` calls in total, exponential backoff capped at `max_delay_s`.

    Delay before retry n (1-based) is min(max_delay_s, base_delay_s * multiplier**(n-1)), multiplied by a
    random factor in [1 - jitter, 1 + jitter] so that many clients do not retry in lockstep.
    """

    max_attempts: int = 3
    base_delay_s: float = 0.2
    multiplier: float = 2.0
    max_delay_s: float = 5.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("base_delay_s", "max_delay_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.multiplier < 1:
            raise ConfigError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be between 0 and 1, got {self.jitter!r}")

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 = the first retry)."""
        base = min(self.max_delay_s, self.base_delay_s * self.multiplier ** (retry - 1))
        if self.jitter:
            base *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base)

    def delays(self, rng: random.Random | None = None) -> list[float]:
        """The waits between the attempts of one call (max_attempts - 1 values)."""
        return [self.delay(n, rng) for n in range(1, self.max_attempts)]


OnRetry = Callable[[int, BaseException, float], Any]


def retry_call(
    fn: Callable[..., T],
    *args: Any,
    policy: RetryPolicy | None = None,
    retry_if: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], Any] = time.sleep,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
    **kwargs: Any,
) -> T:
    """Call `fn`, retrying transient failures per `policy`; the last failure is re-raised."""
    policy = policy or RetryPolicy()
    attempt = 1
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt >= policy.max_attempts or not retry_if(exc):
                raise
            wait = policy.delay(attempt, rng)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            sleep(wait)
            attempt += 1


async def aretry_call(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    policy: RetryPolicy | None = None,
    retry_if: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
    **kwargs: Any,
) -> T:
    """Async `retry_call`: awaits `fn(*args, **kwargs)` and the backoff sleeps."""
    policy = policy or RetryPolicy()
    attempt = 1
    while True:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if attempt >= policy.max_attempts or not retry_if(exc):
                raise
            wait = policy.delay(attempt, rng)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            await sleep(wait)
            attempt += 1


# ----------------------------------------------------------------------------------------------- timeouts


def _check_timeout(timeout_s: float) -> None:
    if not isinstance(timeout_s, int | float) or not timeout_s > 0:
        raise ConfigError(f"timeout_s must be a number > 0, got {timeout_s!r}")


def call_with_timeout(
    fn: Callable[..., T], timeout_s: float, *args: Any, name: str | None = None, **kwargs: Any
) -> T:
    """Run a blocking `fn` in a worker thread and raise CallTimeout if it takes longer than `timeout_s`.

    Python cannot kill a thread: a timed-out call keeps running in the background and its result is
    dropped, so give the underlying client its own socket timeout too.
    """
    _check_timeout(timeout_s)
    outcome: list[Any] = []
    done = threading.Event()
    ctx = contextvars.copy_context()  # keep tracing context (Langfuse/OTel spans) in the worker

    def runner() -> None:
        try:
            outcome.append((True, ctx.run(fn, *args, **kwargs)))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))
        finally:
            done.set()

    # a daemon thread, so a call that never returns cannot hold up interpreter exit
    threading.Thread(target=runner, name=f"ragroute-timeout-{name or _name(fn)}", daemon=True).start()
    if not done.wait(timeout_s):
        raise CallTimeout(name or _name(fn), f"no result within {timeout_s:g}s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


async def acall_with_timeout(
    fn: Callable[..., Awaitable[T]], timeout_s: float, *args: Any, name: str | None = None, **kwargs: Any
) -> T:
    """Await `fn(*args, **kwargs)`, cancelling it and raising CallTimeout after `timeout_s`."""
    _check_timeout(timeout_s)
    try:
        return await asyncio.wait_for(fn(*args, **kwargs), timeout_s)
    except TimeoutError:
        raise CallTimeout(name or _name(fn), f"no result within {timeout_s:g}s") from None


# ------------------------------------------------------------------------------------------ circuit breaker

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Stops calling a failing provider for a while.

    closed: calls go through; `failure_threshold` consecutive failures open the circuit.
    open: calls fail fast with CircuitOpenError until `reset_timeout_s` has passed, then half-open.
    half_open: up to `half_open_max_calls` trial calls go through; a success closes the circuit, a failure
    opens it again for another `reset_timeout_s`.
    Only exceptions in `failure_on` count; others (a user's bad input) pass through without counting.
    """

    def __init__(
        self,
        name: str = "provider",
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        half_open_max_calls: int = 1,
        failure_on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ConfigError(f"failure_threshold must be an int >= 1, got {failure_threshold!r}")
        if not isinstance(reset_timeout_s, int | float) or reset_timeout_s < 0:
            raise ConfigError(f"reset_timeout_s must be a number >= 0, got {reset_timeout_s!r}")
        if not isinstance(half_open_max_calls, int) or half_open_max_calls < 1:
            raise ConfigError(f"half_open_max_calls must be an int >= 1, got {half_open_max_calls!r}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = float(reset_timeout_s)
        self.half_open_max_calls = half_open_max_calls
        self.failure_on = failure_on
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0
        self._stats = {"calls": 0, "successes": 0, "failures": 0, "rejected": 0, "opened": 0}
        self.transitions: list[tuple[str, str]] = []

    def _set(self, state: str) -> None:
        if state != self._state:
            self.transitions.append((self._state, state))
            self._state = state
            if state == OPEN:
                self._opened_at = self._clock()
                self._stats["opened"] += 1
            if state == HALF_OPEN:
                self._trials = 0

    def _refresh(self) -> None:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
            self._set(HALF_OPEN)

    @property
    def state(self) -> str:
        """ "closed", "open" or "half_open" (an open circuit past its reset timeout reads half_open)."""
        with self._lock:
            self._refresh()
            return self._state

    def allow(self) -> bool:
        """Reserve the right to make one call; False means fail fast."""
        with self._lock:
            self._refresh()
            if self._state == CLOSED:
                return True
            if self._state == HALF_OPEN and self._trials < self.half_open_max_calls:
                self._trials += 1
                return True
            self._stats["rejected"] += 1
            return False

    def record_success(self) -> None:
        """A call succeeded: reset the failure count and close a half-open circuit."""
        with self._lock:
            self._stats["successes"] += 1
            self._failures = 0
            if self._state == HALF_OPEN:
                self._set(CLOSED)

    def record_failure(self) -> None:
        """A call failed: count it and open the circuit at the threshold (or at once when half-open)."""
        with self._lock:
            self._stats["failures"] += 1
            self._failures += 1
            if self._state == HALF_OPEN or (
                self._state == CLOSED and self._failures >= self.failure_threshold
            ):
                self._set(OPEN)

    def reset(self) -> None:
        """Force the circuit closed (an operator action)."""
        with self._lock:
            self._failures = 0
            self._set(CLOSED)

    def _reject(self) -> CircuitOpenError:
        with self._lock:
            left = max(0.0, self.reset_timeout_s - (self._clock() - self._opened_at))
        return CircuitOpenError(self.name, f"circuit open after repeated failures; retry in {left:.1f}s")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        if not self.allow():
            raise self._reject()
        with self._lock:
            self._stats["calls"] += 1
        try:
            yield
        except self.failure_on:
            self.record_failure()
            raise
        except BaseException:
            self._release_trial()
            raise
        self.record_success()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn` through the breaker."""
        with self._guard():
            return fn(*args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await `fn` through the breaker."""
        with self._guard():
            return await fn(*args, **kwargs)

    def _release_trial(self) -> None:
        # an uncounted exception (bad input, cancellation) must not use up the half-open trial slot
        with self._lock:
            if self._state == HALF_OPEN and self._trials:
                self._trials -= 1

    def stats(self) -> dict[str, Any]:
        """State, consecutive failures and call/rejection counters."""
        with self._lock:
            self._refresh()
            return {
                "name": self.name,
                "state": self._state,
                "consecutive_failures": self._failures,
                **self._stats,
            }


# --------------------------------------------------------------------------------------- composed helpers


def guarded_call(
    fn: Callable[..., T],
    *args: Any,
    breaker: CircuitBreaker | None = None,
    policy: RetryPolicy | None = None,
    timeout_s: float | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
    **kwargs: Any,
) -> T:
    """Retry (per `policy`) a call that goes through `breaker` and is limited to `timeout_s` per attempt."""

    def attempt() -> T:
        def limited() -> T:
            if timeout_s is None:
                return fn(*args, **kwargs)
            return call_with_timeout(fn, timeout_s, *args, **kwargs)

        return breaker.call(limited) if breaker is not None else limited()

    return retry_call(
        attempt, policy=policy or RetryPolicy(max_attempts=1), sleep=sleep, rng=rng, on_retry=on_retry
    )


async def aguarded_call(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    breaker: CircuitBreaker | None = None,
    policy: RetryPolicy | None = None,
    timeout_s: float | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
    **kwargs: Any,
) -> T:
    """Async `guarded_call`."""

    async def attempt() -> T:
        async def limited() -> T:
            if timeout_s is None:
                return await fn(*args, **kwargs)
            return await acall_with_timeout(fn, timeout_s, *args, **kwargs)

        return await breaker.acall(limited) if breaker is not None else await limited()

    return await aretry_call(
        attempt, policy=policy or RetryPolicy(max_attempts=1), sleep=sleep, rng=rng, on_retry=on_retry
    )


OnDegrade = Callable[[str], Any] | MutableSequence[str]


def _name(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def degradation_message(name: str, exc: BaseException, fallback: str) -> str:
    """The one-line record of a degradation: what failed, why, and what was used instead."""
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{name}: {type(exc).__name__}" + (f" ({detail})" if detail else "") + f"; fell back to {fallback}"


def _record(on_degrade: OnDegrade, message: str) -> None:
    if isinstance(on_degrade, MutableSequence):
        on_degrade.append(message)
    else:
        on_degrade(message)


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    # an object whose __call__ is `async def` counts as async too
    call = type(fn).__dict__.get("__call__") if not inspect.isfunction(fn) else None
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def call_with_fallback(
    primary: Callable[[], Any],
    fallback: Callable[[], Any],
    *,
    on_degrade: OnDegrade,
    name: str | None = None,
    fallback_name: str | None = None,
    exceptions: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
) -> Any:
    """Return `primary()`, or `fallback()` when it raises one of `exceptions`, recording the degradation.

    Sync callables give the value; when `primary` is async (or returns an awaitable) this returns an
    awaitable to be awaited. Exceptions outside `exceptions` (e.g. InputError) propagate unchanged, as
    does a failure of the fallback itself.
    """
    label = name or _name(primary)
    fb_label = fallback_name or _name(fallback)
    if _is_async(primary):
        return acall_with_fallback(
            primary,
            fallback,
            on_degrade=on_degrade,
            name=label,
            fallback_name=fb_label,
            exceptions=exceptions,
        )
    try:
        result = primary()
    except exceptions as exc:
        _record(on_degrade, degradation_message(label, exc, fb_label))
        return fallback()
    if inspect.isawaitable(result):
        first = result
        return acall_with_fallback(
            lambda: first,
            fallback,
            on_degrade=on_degrade,
            name=label,
            fallback_name=fb_label,
            exceptions=exceptions,
        )
    return result


async def acall_with_fallback(
    primary: Callable[[], Any],
    fallback: Callable[[], Any],
    *,
    on_degrade: OnDegrade,
    name: str | None = None,
    fallback_name: str | None = None,
    exceptions: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
) -> Any:
    """Async `call_with_fallback`: awaits `primary()`; on failure awaits `fallback()` if it is awaitable."""
    label = name or _name(primary)
    try:
        return await primary()
    except exceptions as exc:
        _record(on_degrade, degradation_message(label, exc, fallback_name or _name(fallback)))
        result = fallback()
        return await result if inspect.isawaitable(result) else result
