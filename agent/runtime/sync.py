"""Sync callers of the async nodes: graph.invoke / graph.stream and ragroute.ask().

The nodes are coroutines. `node()` gives LangGraph both callables for each of them (what `add_node` builds
internally), so ainvoke/astream await the node on the caller's loop, and invoke/stream drive the same
coroutine through `run_sync`. LangGraph injects `runtime` and the run's config either way, and the run's
contextvars (config, callbacks such as the "messages" stream handler, cache counters) travel with it.
A graph built with `Providers` runs each node inside `providers.using(...)`, on both paths.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

# LangGraph's own prebuilt nodes (ToolNode) are built on it; there is no public sync+async node type
from langgraph._internal._runnable import RunnableCallable
from ragroute.runtime.providers import Providers, using

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop for every sync call in the process, started on first use.

    One long-lived loop rather than asyncio.run per call: async clients cached by providers (an HTTP
    connection pool inside a chat model, circuit breakers) stay on the loop they were made on."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="ragroute-sync", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion and return its result, from any thread, including one whose event loop is
    running (a notebook cell, an async web handler). The coroutine sees the caller's contextvars."""
    context = contextvars.copy_context()
    if threading.current_thread() is _thread:
        # called from a coroutine on the background loop itself: blocking that loop would deadlock
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(context.run, asyncio.run, coro).result()

    async def in_context() -> T:
        return await asyncio.get_running_loop().create_task(coro, context=context)

    future = asyncio.run_coroutine_threadsafe(in_context(), _background_loop())
    try:
        return future.result()
    except BaseException:  # interrupted (Ctrl-C) or failed: do not leave the coroutine running
        future.cancel()
        raise


def node(
    afunc: Callable[..., Awaitable[T]], name: str | None = None, providers: Providers | None = None
) -> RunnableCallable:
    """A graph node for `afunc` that LangGraph can run from invoke/stream as well as ainvoke/astream;
    with `providers`, the node runs inside `using(providers)`."""

    @functools.wraps(afunc)  # same signature: LangGraph injects `runtime` from it
    async def coro(*args: Any, **kwargs: Any) -> T:
        with using(providers):
            return await afunc(*args, **kwargs)

    @functools.wraps(afunc)
    def func(*args: Any, **kwargs: Any) -> T:
        with using(providers):  # run_sync copies the context, binding included
            return run_sync(afunc(*args, **kwargs))  # type: ignore[arg-type]

    # trace=False as in add_node: the node's span is made by the graph, not by this wrapper
    return RunnableCallable(func, coro, name=name or afunc.__name__, trace=False)
