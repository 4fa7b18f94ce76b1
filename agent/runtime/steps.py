"""Small helpers every node uses: timing, trace notes, degradations, LLM calls, source blocks for prompts
and JSON parsing."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.types import Overwrite
from ragroute.context import Context
from ragroute.prompts.generate import SOURCE_TEMPLATE
from ragroute.runtime import providers
from ragroute.tools.errors import ProviderError

NodeFn = Callable[..., Awaitable[dict]]
_SOURCE_TAG = re.compile(r"<(?=\s*/?\s*source\b)", re.I)


def timed(name: str) -> Callable[[NodeFn], NodeFn]:
    """Decorate a node so its update carries {"timings": {name: ms}} (summed across parallel branches)."""

    def wrap(fn: NodeFn) -> NodeFn:
        @functools.wraps(fn)
        async def node(state: Any, runtime: Any) -> dict:
            start = time.perf_counter()
            update = await fn(state, runtime)
            ms = round((time.perf_counter() - start) * 1000, 3)
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
    if ctx.strict:
        if isinstance(exc, ProviderError):
            raise exc
        raise ProviderError(where, str(exc)) from exc
    return f"{where}: {type(exc).__name__}: {exc}"[:300]


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


async def call_llm(ctx: Context, prompt: str, *, system: str | None = None) -> tuple[str, dict[str, float]]:
    """Send one prompt to ctx.llm; return (text, usage). Raises ProviderError on any model failure."""
    assert ctx.llm is not None
    model = providers.chat_model(ctx.llm)
    messages = ([SystemMessage(system)] if system else []) + [HumanMessage(prompt)]
    try:
        # through the model's circuit breaker: after repeated timeouts/5xx, fail fast instead of waiting
        reply = await providers.guarded(
            providers.breaker_name("llm", ctx.llm, model),
            lambda: asyncio.wait_for(model.ainvoke(messages), timeout=ctx.llm_timeout_s),
        )
    except ProviderError:
        raise
    except TimeoutError as exc:
        raise ProviderError(ctx.llm, f"no answer within {ctx.llm_timeout_s}s") from exc
    except Exception as exc:  # vendor SDKs raise their own types; all mean the model call failed
        raise ProviderError(ctx.llm, f"call failed: {exc}") from exc
    content = reply.content if isinstance(reply.content, str) else str(reply.content)
    return content, usage_of(reply, ctx.llm)


async def llm_strings(
    ctx: Context, where: str, prompt: str, limit: int, fallback: str
) -> tuple[list[str], dict]:
    """Ask ctx.llm for a JSON list of strings (at most `limit`); on any failure return [] and an update
    recording the degradation ("<where>: ...; <fallback>") so the caller uses its offline rules."""
    if not ctx.llm:
        return [], {}
    try:
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
    return json.loads(match.group(1))


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
