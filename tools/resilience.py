"""Fault handling for provider calls: which failures are transient, and a circuit breaker that stops
calling a provider that keeps failing. It works for sync and async callables and takes an injectable
clock so tests run without waiting.

`ragroute.runtime.providers.guarded()` puts every chat-model and reranker call through one breaker per
provider; a degraded answer is recorded on the run's state by the node that falls back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from ragroute.tools.errors import ConfigError, ProviderError

T = TypeVar("T")

# Failures that count against a provider. A user mistake (InputError, ConfigError) is not one.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ProviderError, TimeoutError, ConnectionError, OSError)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class CircuitOpenError(ProviderError):
    """The circuit breaker for a provider is open: the call was not attempted."""


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
