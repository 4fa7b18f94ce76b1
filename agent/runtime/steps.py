"""Small helpers every node uses: timing, trace notes, degradations, LLM calls, source blocks for prompts
and JSON parsing."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.types import Overwrite
from pydantic import BaseModel, ValidationError
from ragroute.context import Context
from ragroute.prompts.generate import SOURCE_TEMPLATE
from ragroute.runtime import metrics, providers
from ragroute.tools.errors import ProviderError

NodeFn = Callable[..., Awaitable[dict]]
_SOURCE_TAG = re.compile(r"<(?=\s*/?\s*source\b)", re.I)


def timed(name: str) -> Callable[[NodeFn], NodeFn]:
    """Decorate a node so its update carries {"timings": {name: ms}} (summed across parallel branches)."""

    def wrap(fn: NodeFn) -> NodeFn:
        @functools.wraps(fn)
        async def node(state: Any, runtime: Any) -> dict:
            start = time.perf_counter()
            try:
                update = await fn(state, runtime)
            except BaseException:
                metrics.record_node(name, time.perf_counter() - start, state, None)
                raise
            seconds = time.perf_counter() - start
            metrics.record_node(name, seconds, state, update)
            ms = round(seconds * 1000, 3)
            timings = update.get("timings", {})
            if isinstance(timings, Overwrite):
                update["timings"] = Overwrite({**timings.value, name: ms})
            else:
                update["timings"] = {**timings, name: ms}
            return update

        return node

    return wrap


def note(node: str, **data: Any) -> dict:
    """A trace entry: which node did what."""
    return {"node": node, **data}


def degrade(ctx: Context, where: str, exc: BaseException) -> str:
    """Record a provider failure as a degradation message, or re-raise it when ctx.strict."""
    metrics.record_degradation(where, _provider_of(ctx, where), exc)
    if ctx.strict:
        if isinstance(exc, ProviderError):
            raise exc
        raise ProviderError(where, str(exc)) from exc
    return f"{where}: {type(exc).__name__}: {exc}"[:300]


def _provider_of(ctx: Context, where: str) -> str:
    """Which provider a degradation at `where` is about: the reranker, the index or the chat model."""
    if where.startswith("rerank"):
        return where.partition("(")[2].rstrip(")") or str(ctx.reranker)
    if where.startswith("prune"):
        return "index"
    return str(ctx.llm or "none")


def usage_of(message: Any, spec: str | None) -> dict[str, float]:
    """Token usage and estimated cost of one chat-model response."""
    meta = getattr(message, "usage_metadata", None) or {}
    prompt = int(meta.get("input_tokens", 0) or 0)
    completion = int(meta.get("output_tokens", 0) or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": providers.cost_usd(spec, prompt, completion),
    }


async def _invoke(ctx: Context, runnable: Any, messages: list, circuit: str) -> Any:
    """Await runnable.ainvoke(messages) through ctx.llm's circuit breaker and ctx.llm_timeout_s."""
    assert ctx.llm is not None
    try:
        # through the model's circuit breaker: after repeated timeouts/5xx, fail fast instead of waiting
        return await providers.guarded(
            circuit, lambda: asyncio.wait_for(runnable.ainvoke(messages), timeout=ctx.llm_timeout_s)
        )
    except ProviderError:
        raise
    except TimeoutError as exc:
        raise ProviderError(ctx.llm, f"no answer within {ctx.llm_timeout_s}s") from exc
    except Exception as exc:  # vendor SDKs raise their own types; all mean the model call failed
        raise ProviderError(ctx.llm, f"call failed: {exc}") from exc


def _messages(prompt: str, system: str | None) -> list:
    return ([SystemMessage(system)] if system else []) + [HumanMessage(prompt)]


def _text(reply: Any) -> str:
    return reply.content if isinstance(reply.content, str) else str(reply.content)


async def call_llm(ctx: Context, prompt: str, *, system: str | None = None) -> tuple[str, dict[str, float]]:
    """Send one prompt to ctx.llm; return (text, usage). Raises ProviderError on any model failure."""
    assert ctx.llm is not None
    model = providers.chat_model(ctx.llm)
    circuit = providers.breaker_name("llm", ctx.llm, model)
    reply = await _invoke(ctx, model, _messages(prompt, system), circuit)
    return _text(reply), usage_of(reply, ctx.llm)


Reply = TypeVar("Reply", bound=BaseModel)


async def llm_json(
    ctx: Context, prompt: str, schema: type[Reply], *, system: str | None = None
) -> tuple[Reply, dict[str, float]]:
    """Ask ctx.llm for a reply matching `schema`; return (reply, usage). Every JSON step calls this.

    The model is held to the schema by its provider's structured output (providers.json_output); a provider
    without it, or a server that refuses the response_format, is asked in plain text and its reply parsed.
    Raises ProviderError when the call fails, ValueError when the reply is not schema-valid JSON.
    """
    assert ctx.llm is not None
    model = providers.chat_model(ctx.llm)
    circuit = providers.breaker_name("llm", ctx.llm, model)
    messages = _messages(prompt, system)
    structured = providers.json_output(model, schema, circuit)
    reply: Any = None
    if structured is not None:
        try:
            reply = await _invoke(ctx, structured, messages, circuit)
        except providers.StructuredOutputRefused:
            providers.plain_only(circuit)
    if reply is None:
        reply = await _invoke(ctx, model, messages, circuit)
    if isinstance(reply, dict):  # with_structured_output(include_raw=True)
        raw, parsed = reply.get("raw"), reply.get("parsed")
        if reply.get("parsing_error") is not None or parsed is None:
            raise ValueError(f"reply does not match {schema.__name__}: {reply.get('parsing_error')}")
        return schema.model_validate(parsed, from_attributes=True), usage_of(raw, ctx.llm)
    try:
        return schema.model_validate(parse_json(_text(reply))), usage_of(reply, ctx.llm)
    except ValidationError as exc:
        raise ValueError(f"reply does not match {schema.__name__}: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    return f"{'.'.join(str(p) for p in errors[0]['loc'])}: {errors[0]['msg']}"


async def llm_strings(
    ctx: Context, where: str, prompt: str, limit: int, fallback: str, schema: type[BaseModel] | None = None
) -> tuple[list[str], dict]:
    """Ask ctx.llm for a list of strings (at most `limit`): `schema`'s first field, else a bare JSON list.
    On any failure return [] and an update recording the degradation ("<where>: ...; <fallback>") so the
    caller uses its offline rules."""
    if not ctx.llm:
        return [], {}
    try:
        if schema is not None:
            reply, usage = await llm_json(ctx, prompt, schema)
            data = getattr(reply, next(iter(type(reply).model_fields)))
        else:
            text, usage = await call_llm(ctx, prompt)
            data = parse_json(text)
        if not isinstance(data, list):
            raise ValueError(f"expected a JSON list, got {type(data).__name__}")
        return [str(s).strip() for s in data if str(s).strip()][:limit], {"usage": usage}
    except Exception as exc:  # model or JSON failure: recorded, offline rules used instead
        return [], {"degradations": [f"{degrade(ctx, where, exc)}; {fallback}"]}


_JSON_BLOCK = re.compile(r"(\{.*\}|\[.*\])", re.S)


def parse_json(text: str) -> Any:
    """The first JSON object/array in an LLM reply (code fences and chatter tolerated)."""
    match = _JSON_BLOCK.search(text or "")
    if not match:
        raise ValueError(f"no JSON in reply: {text[:80]!r}")
    # strict=False: small models put raw newlines/tabs inside strings (llama.cpp's JSON grammar allows them)
    return json.loads(match.group(1), strict=False)


def format_sources(sources: list[dict]) -> str:
    """Numbered source blocks for the prompt, with title, section and date/version when known."""
    blocks = []
    for src in sources:
        meta = src.get("metadata") or {}
        dated = ", ".join(
            b
            for b in (
                f"version {meta['version']}" if meta.get("version") else "",
                f"updated {meta['last_updated']}" if meta.get("last_updated") else "",
            )
            if b
        )
        blocks.append(
            SOURCE_TEMPLATE.format(
                n=src["n"],
                title=src.get("title") or src.get("doc_id", ""),
                section=f" — {src['section']}" if src.get("section") else "",
                dated=f" ({dated})" if dated else "",
                text=_SOURCE_TAG.sub("‹", src.get("text", "")),  # a document cannot close its <source> tag
            )
        )
    return "\n\n".join(blocks)
