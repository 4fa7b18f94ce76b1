"""The answer runnable /ask and /v1 share: the graph behind the response cache, streaming only what a
caller may see; the config each run gets (the caller's scope, tracing); a serializer for streamed events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from langchain_core.runnables.base import RunnableBinding
from langchain_core.tracers.log_stream import RunLogPatch
from langserve.serialization import WellKnownLCSerializer
from pydantic import BaseModel
from ragroute.context import Context, context_of
from ragroute.runtime import answer_ids, caching
from ragroute.runtime import tracing as tracing_mod
from ragroute.runtime.providers import Providers, using
from ragroute.runtime.views import public, public_metadata, public_tags
from ragroute.server.apidocs import form_schema
from ragroute.server.auth import Identity
from ragroute.server.policy import server_configurable, without_server_paths
from ragroute.server.state import IndexHolder, ServerSettings
from ragroute.workflow import build_graph

SESSION_HEADER = "x-session-id"  # a client's conversation id, passed to traces as their session


def _json_default(obj: Any) -> Any:
    """JSON for objects langserve's serializer does not know."""
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return repr(obj)


class Serializer(WellKnownLCSerializer):
    """langserve's serializer, tolerant of objects it does not know in streamed events."""

    def dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=_json_default)


class CachedAnswers(RunnableBinding):  # type: ignore[type-arg]
    """A runnable whose async invoke is answered through the response cache (see `cached_answers`)."""

    # Providers bound while the cache key is made and the run goes (Any: pydantic must not rebuild it)
    providers: Any = None

    def config_schema(self, *, include: Any = None) -> Any:
        # the graph's own schema (its Context as `configurable`); langserve parses requests with it
        return form_schema(self.bound.config_schema(include=include))

    def get_input_schema(self, config: Any = None) -> Any:
        # form_schema: the playground's forms draw nullable fields (validation and OpenAPI unchanged)
        return form_schema(self.bound.get_input_schema(config))

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:  # noqa: A002
        if not isinstance(input, dict):
            return await RunnableBinding.ainvoke(self, input, config, **kwargs)
        ctx = context_of(self._merge_configs(config))

        async def run(values: dict[str, Any]) -> dict[str, Any]:
            return dict(await RunnableBinding.ainvoke(self, values, config, **kwargs))

        with using(self.providers):
            return without_server_paths(await caching.answer(dict(input), ctx, run))

    async def abatch(self, inputs: list[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        """The graph's batch, each output as a remote caller sees it (no server file paths)."""
        with answer_ids.delivering(one=False):  # each answer of the batch is recorded under its own id
            outputs = await RunnableBinding.abatch(self, inputs, config, **kwargs)
        return [without_server_paths(out) for out in outputs]

    async def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:  # noqa: A002
        """The graph's chunks ({node: update}), each update cut to its public fields (`views.public`)."""
        with answer_ids.delivering():  # finalize's chunk carries the answer id, recorded for feedback
            async for chunk in RunnableBinding.astream(self, input, config, **kwargs):
                yield shown(chunk)

    def astream_events(self, input: Any, config: Any = None, **kwargs: Any) -> Any:  # noqa: A002
        """The graph's events with public payloads, and no LangGraph bookkeeping in metadata or tags."""
        events = RunnableBinding.astream_events(self, input, config, **kwargs)
        return _public_events(events) if hasattr(events, "__aiter__") else events

    async def astream_log(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:  # noqa: A002
        """The run log (the playground's stream) with every patch value cut to its public fields."""
        with answer_ids.delivering():
            async for patch in RunnableBinding.astream_log(self, input, config, **kwargs):
                if isinstance(patch, RunLogPatch):
                    yield RunLogPatch(*[_public_op(op) for op in patch.ops])
                else:  # diff=False: a RunLog; its ops are already applied to its state
                    yield patch


def shown(value: Any) -> Any:
    """What a remote caller sees of a stream chunk or payload: its public fields, no server file paths."""
    return without_server_paths(public(value))


def _public_op(op: dict[str, Any]) -> dict[str, Any]:
    """One run-log patch op with a public value; a log entry keeps no LangGraph metadata or step tags."""
    if "value" not in op:
        return op
    value = shown(op["value"])
    if isinstance(value, dict) and op.get("path", "").startswith("/logs/"):
        if "metadata" in value:
            value["metadata"] = public_metadata(value["metadata"])
        if "tags" in value:
            value["tags"] = public_tags(value["tags"])
    return {**op, "value": value}


async def _public_events(events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Each stream event with `views.public` payloads and without LangGraph's metadata and step tags."""
    with answer_ids.delivering():
        async for event in events:
            out = dict(event)
            out["data"] = shown(event.get("data", {}))
            if "metadata" in event:
                out["metadata"] = public_metadata(event["metadata"])
            if "tags" in event:
                out["tags"] = public_tags(event["tags"])
            yield out


def cached_answers(runnable: Any, providers: Providers | None = None) -> Any:
    """`runnable` (the graph) with its async invoke going through the response cache
    (ragroute.runtime.caching): the same question, filters, settings and caller scope on the same index
    version is answered from memory within `cache_ttl_s`; the output's `cache.response` says "hit",
    "miss" or "off". The key holds the caller's groups and clearance, so a cached answer never reaches
    a caller with another scope. Streams and batches always run the graph. `providers`: the objects the
    graph is bound to (build_graph(providers)), so the cache key names the same ones."""
    return CachedAnswers(bound=runnable, providers=providers)


def answer_runnable(holder: IndexHolder) -> Any:
    """The graph bound to `holder`'s index behind the response cache; built once per app, served by /ask
    and /v1 alike (the graph's nodes and the cache key read the index through the holder)."""
    served = holder.providers()
    return cached_answers(build_graph(served).compile(name="ragroute"), served)


def run_config(
    config: Mapping[str, Any] | None, ident: Identity, settings: ServerSettings, session_id: str | None
) -> dict[str, Any]:
    """The config one run gets: the request's, its `configurable` forced to the caller's scope by
    `server_configurable` (InputError/ConfigError for a bad one), traced as `ident.user` in `session_id`."""
    config = config or {}
    configurable = server_configurable(config.get("configurable"), ident, settings)
    out: dict[str, Any] = {**config, "configurable": configurable}
    if settings.tracing:
        ctx = Context.from_dict(configurable)
        out = dict(tracing_mod.traced_config(out, ctx=ctx, user_id=ident.user, session_id=session_id))
    return out
