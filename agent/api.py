"""Entry points: ask() / aask() return the output dict; astream() yields node updates and answer tokens.

`providers=Providers(index=..., chat_model=..., reranker=...)` serves ready-made objects to that one run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from langgraph.types import StreamMode
from ragroute.context import Context
from ragroute.runtime import caching
from ragroute.runtime.providers import Providers, using
from ragroute.runtime.sync import run_sync
from ragroute.runtime.tracing import traced_config
from ragroute.state import InputState, OutputState
from ragroute.tools.errors import InputError
from ragroute.tools.pii import redact_query
from ragroute.workflow import build_graph, graph

OUTPUT_KEYS = tuple(OutputState.__annotations__)


def _inputs(question: str, overrides: dict[str, Any]) -> tuple[dict[str, Any], Context]:
    if not isinstance(question, str) or not question.strip():
        raise InputError("question must be a non-empty string")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the tokenizers would raise TypeError deep in the graph
        raise InputError("question is not valid unicode (it contains a lone surrogate)") from None
    ctx = Context.from_dict(overrides)
    question = question.strip()
    if ctx.redact_query_pii:  # before retrieval, models and traces see it
        question = redact_query(question)
    return {"question": question}, ctx


def _shape(result: dict[str, Any]) -> dict[str, Any]:
    """Exactly the documented output keys, in a stable order."""
    return {key: result.get(key) for key in OUTPUT_KEYS}


def ask(question: str, *, providers: Providers | None = None, **overrides: Any) -> dict[str, Any]:
    """Answer `question` synchronously; keyword arguments override Context fields (index_dir, llm, ...);
    `providers`: ready-made objects this run uses instead of building them from those strings.

    Works inside a running event loop too (a notebook): `aask` runs on ragroute's background loop."""
    _inputs(question, overrides)  # validate in the caller's thread: clear errors before any run starts
    return run_sync(aask(question, providers=providers, **overrides))


async def aask(question: str, *, providers: Providers | None = None, **overrides: Any) -> dict[str, Any]:
    """Async `ask`."""
    inputs, ctx = _inputs(question, overrides)

    async def run(values: dict[str, Any]) -> dict[str, Any]:
        state = cast(InputState, values)
        return _shape(await graph.ainvoke(state, context=ctx, config=traced_config(ctx=ctx)))

    # the response cache; the output's `cache` says {"response": "hit"|"miss"|"off", "retrieval_hits": n, ...}
    with using(providers):  # the cache key names the bound objects too
        return await caching.answer(inputs, ctx, run)


async def astream(
    question: str, *, providers: Providers | None = None, **overrides: Any
) -> AsyncIterator[dict[str, Any]]:
    """Stream the run: {"type": "update", "node", "data"}, {"type": "token", "text"} while an LLM writes the
    answer, and finally {"type": "result", "data": output dict}."""
    inputs, ctx = _inputs(question, overrides)
    final: dict[str, Any] = {}
    modes: list[StreamMode] = ["updates", "messages", "values"]
    # a generator cannot hold a binding across its yields (the consumer's code would see it): the nodes of
    # a graph built for these providers bind them themselves
    runnable = graph if providers is None else build_graph(providers).compile(name="ragroute")
    async for part in runnable.astream(
        cast(InputState, inputs), context=ctx, stream_mode=modes, config=traced_config(ctx=ctx)
    ):
        mode, chunk = cast(tuple[str, Any], part)  # a list of modes yields (mode, chunk) pairs
        if mode == "updates":
            for node, data in chunk.items():
                yield {"type": "update", "node": node, "data": data}
        elif mode == "messages":
            message, meta = chunk
            if meta.get("langgraph_node") == "generate" and getattr(message, "content", ""):
                yield {"type": "token", "text": message.content}
        else:
            final = chunk
    yield {"type": "result", "data": _shape(final)}
