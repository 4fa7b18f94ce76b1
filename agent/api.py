"""Entry points: ask() / aask() return the output dict; astream() yields node updates and answer tokens;
feedback() rates an answer they gave.

`providers=Providers(index=..., chat_model=..., reranker=...)` serves ready-made objects to that one run."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeAlias, cast

from langgraph.types import StreamMode
from ragroute.context import Context, check_llm_provider
from ragroute.runtime import answer_ids, caching, threads
from ragroute.runtime import feedback as feedback_store
from ragroute.runtime import providers as provided
from ragroute.runtime.providers import Providers, using
from ragroute.runtime.sync import run_sync
from ragroute.runtime.tracing import score_feedback, traced_config
from ragroute.runtime.views import public
from ragroute.state import InputState, OutputState
from ragroute.tools.errors import ConfigError, InputError, check_unicode
from ragroute.tools.pii import redact_query
from ragroute.tools.types import AccessScope
from ragroute.workflow import build_graph, graph

OUTPUT_KEYS = tuple(OutputState.__annotations__)


ContextLike: TypeAlias = Context | Mapping[str, Any] | None  # a Context, or its fields as a dict


def _context(context: ContextLike, overrides: dict[str, Any], providers: Providers | None) -> Context:
    """`context` (a Context or its fields as a dict) with keyword overrides on top, validated."""
    if isinstance(context, Context):
        base = {f.name: getattr(context, f.name) for f in dataclasses.fields(Context)}
    elif context is None or isinstance(context, Mapping):
        base = dict(context or {})
    else:
        raise ConfigError(f"context must be a Context or a dict of its fields, got {type(context).__name__}")
    ctx = Context.from_dict({**base, **overrides})
    if providers is None or providers.chat_model is None:  # a bound model may carry any name
        check_llm_provider(ctx.llm)
    return ctx


def _inputs(
    question: str, context: ContextLike, overrides: dict[str, Any], providers: Providers | None
) -> tuple[dict[str, Any], Context]:
    if not isinstance(question, str) or not question.strip():
        raise InputError("question must be a non-empty string")
    check_unicode(question, "question")  # else the tokenizers would raise TypeError deep in the graph
    ctx = _context(context, overrides, providers)
    question = question.strip()
    if ctx.redact_query_pii:  # before retrieval, models and traces see it
        question = redact_query(question)
    return {"question": question}, ctx


def _shape(result: dict[str, Any]) -> dict[str, Any]:
    """Exactly the documented output keys, in a stable order."""
    return {key: result.get(key) for key in OUTPUT_KEYS}


def ask(
    question: str,
    *,
    context: ContextLike = None,
    providers: Providers | None = None,
    thread_id: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Answer `question` synchronously. `context`: a Context or a dict of its fields; keyword arguments
    override single fields (index_dir, llm, user_groups, all_access, ...). Without user_groups, clearance
    or all_access=True only public documents are searched. `providers`: ready-made objects this run uses
    instead of building them from those strings. `thread_id`: a conversation; earlier questions of the
    thread (kept in `<index_dir>/threads.sqlite`) turn a follow-up into a standalone question.

    Works inside a running event loop too (a notebook): `aask` runs on ragroute's background loop."""
    # validate in the caller's thread: clear errors before any run starts
    _inputs(question, context, overrides, providers)
    if thread_id is not None:
        threads.check_thread_id(thread_id)
    return run_sync(aask(question, context=context, providers=providers, thread_id=thread_id, **overrides))


async def aask(
    question: str,
    *,
    context: ContextLike = None,
    providers: Providers | None = None,
    thread_id: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Async `ask`."""
    inputs, ctx = _inputs(question, context, overrides, providers)
    if thread_id is not None:
        return await _ask_in_thread(inputs, ctx, providers, threads.check_thread_id(thread_id))

    async def run(values: dict[str, Any]) -> dict[str, Any]:
        state = cast(InputState, values)
        return _shape(await graph.ainvoke(state, context=ctx, config=traced_config(ctx=ctx)))

    # the response cache; the output's `cache` says {"response": "hit"|"miss"|"off", "retrieval_hits": n, ...}
    with using(providers):  # the cache key names the bound objects too
        return await caching.answer(inputs, ctx, run)


async def _ask_in_thread(
    inputs: dict[str, Any], ctx: Context, providers: Providers | None, thread_id: str
) -> dict[str, Any]:
    """One question of a conversation thread, checkpointed in the SQLite file beside the index.

    Never served from the response cache: the answer depends on the thread, and the thread must record it."""

    async def run(values: dict[str, Any]) -> dict[str, Any]:
        async with threads.saver(ctx) as saver:
            runnable = graph.copy(update={"checkpointer": saver})
            config = traced_config(ctx=ctx)
            config["configurable"] = {**config.get("configurable", {}), "thread_id": thread_id}
            # one checkpoint per turn (the run's end): a turn is never resumed midway, and fewer copies of
            # the retrieved text are kept on disk
            state = cast(InputState, values)
            return _shape(await runnable.ainvoke(state, context=ctx, config=config, durability="exit"))

    with using(providers):
        return await caching.answer(inputs, dataclasses.replace(ctx, cache=False), run)


async def astream(
    question: str,
    *,
    context: ContextLike = None,
    providers: Providers | None = None,
    raw: bool = False,
    **overrides: Any,
) -> AsyncIterator[dict[str, Any]]:
    """Stream the run: {"type": "update", "node", "data"}, {"type": "token", "text"} while an LLM writes the
    answer, and finally {"type": "result", "data": output dict}.

    An update's data is the node's public fields, as /ask/stream sends them (`runtime.views.public`: the
    output keys, the question and trace notes, no hit lists or LangGraph control objects); `raw=True`
    yields LangGraph's own updates instead (every state key, `Overwrite` values as they are)."""
    inputs, ctx = _inputs(question, context, overrides, providers)
    final: dict[str, Any] = {}
    modes: list[StreamMode] = ["updates", "messages", "values"]
    # a generator cannot hold a binding across its yields (the consumer's code would see it): the nodes of
    # a graph built for these providers bind them themselves
    runnable = graph if providers is None else build_graph(providers).compile(name="ragroute")
    with answer_ids.delivering():  # the result's answer_id can be rated with feedback()
        async for part in runnable.astream(
            cast(InputState, inputs), context=ctx, stream_mode=modes, config=traced_config(ctx=ctx)
        ):
            mode, chunk = cast(tuple[str, Any], part)  # a list of modes yields (mode, chunk) pairs
            if mode == "updates":
                for node, data in chunk.items():
                    yield {"type": "update", "node": node, "data": data if raw else public(data)}
            elif mode == "messages":
                message, meta = chunk
                if meta.get("langgraph_node") == "generate" and getattr(message, "content", ""):
                    yield {"type": "token", "text": message.content}
            else:
                final = chunk
    yield {"type": "result", "data": _shape(final)}


def feedback(
    answer_id: str,
    rating: str,
    *,
    correct_answer: str | None = None,
    correct_source: str | None = None,
    comment: str | None = None,
    index_dir: str | None = None,
    user: str | None = None,
    providers: Providers | None = None,
) -> dict[str, Any]:
    """Rate an answer ask()/aask()/astream() gave: `rating` "up" or "down", optionally the correct answer
    and/or the doc id of the correct source, and a comment (a second rating replaces the first). Kept in
    `<index_dir>/feedback.sqlite` (and sent to Langfuse as a score when tracing is on); `ragroute
    feedback export` turns ratings into a golden set. `user`: the `extra={"user_id": ...}` the question was
    asked with. Returns the answer with its feedback; an unknown id raises AnswerNotFound."""
    rated = feedback_store.Rating.checked(rating, correct_answer, correct_source, comment)
    ctx = _context({"index_dir": index_dir} if index_dir else None, {}, providers)
    caller = feedback_store.local_caller(user)
    with using(providers):
        folder = feedback_store.store_folder(ctx)
        if folder is None:
            raise ConfigError(f"index_dir={ctx.resolved_index_dir!r} does not exist: no answers to rate")
        given = feedback_store.FeedbackStore(folder).answer(answer_id, caller)
        scope = given["scope"]  # the correct source must be a document the question's scope could read
        access = None if scope == "all" else AccessScope(groups=scope["groups"], clearance=scope["clearance"])

        def can_read(doc_id: str) -> bool:
            index: Any = provided.index(ctx)  # a HybridIndex (SearchIndex, the protocol, has no ACL lookup)
            return bool(index.can_read_document(doc_id, access))

        out = feedback_store.give(folder, answer_id, caller, rated, can_read)
    return {**feedback_store.shown(out), "scored": score_feedback(out)}
