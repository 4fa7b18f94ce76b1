"""Langfuse tracing for graph runs: one trace per question, a span per node, retrieval details and scores.

Tracing is on when LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are set (plus LANGFUSE_BASE_URL or
LANGFUSE_HOST for a self-hosted Langfuse); without them nothing is imported, created or logged. Every
failure inside tracing is swallowed and logged at debug level: a down Langfuse never fails a query.

`traced_config(config, ctx=..., user_id=..., session_id=...)` returns a RunnableConfig carrying a
`RagrouteCallbackHandler` (a `langfuse.langchain.CallbackHandler`) plus the Langfuse trace attributes.
The handler adds to the node spans what the generic LangChain integration cannot know:
- retrieve: query, purpose, k (candidate_k), filters and access scope applied, doc ids, chunk ids, scores
- rerank: k, reranker, doc ids and scores of the kept documents
- generate / verify: generator, token usage and cost, faithfulness
- the root span: tag `route:<route>`, usage and cost totals, and a `faithfulness` Langfuse score.
Span inputs and outputs are `views.summary` of the state (the question, the answer, ids, scores, counts),
never the full state, and span metadata carries no LangGraph bookkeeping: a traced question stays small.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, cast
from uuid import UUID

from langchain_core.runnables import RunnableConfig
from langgraph.types import Send
from ragroute.runtime import answer_ids, providers
from ragroute.runtime.caching import run_stats
from ragroute.runtime.scope import access_of, combined_filters
from ragroute.runtime.views import hits_summary, public_metadata, public_tags, summary, unwrap
from ragroute.tools.pii import redact_query

log = logging.getLogger("ragroute.runtime.tracing")

_client_lock = threading.Lock()
_client: Any = None  # Langfuse client used for runs (None: from the environment, created on first use)


def enabled() -> bool:
    """True when Langfuse keys are configured (or a client was installed with `set_client`)."""
    if _client is not None:
        return True
    if os.environ.get("LANGFUSE_TRACING_ENABLED", "true").lower() in ("false", "0", "no"):
        return False
    return bool(os.environ.get("LANGFUSE_PUBLIC_KEY") and os.environ.get("LANGFUSE_SECRET_KEY"))


def set_client(client: Any) -> None:
    """Use this Langfuse client for every run (tests, apps with their own exporter); None: back to env."""
    global _client
    with _client_lock:
        _client = client


def get_client() -> Any:
    """The Langfuse client for runs, or None when tracing is off or the client cannot be created."""
    global _client
    if not enabled():
        return None
    with _client_lock:
        if _client is None:
            try:
                from langfuse import Langfuse

                _client = Langfuse()  # reads keys, base url/host, flush settings from the environment
            except Exception as exc:  # a broken tracing setup must not break queries
                log.debug("langfuse client unavailable: %s", exc)
                return None
        return _client


def flush() -> None:
    """Send pending spans and scores now (server shutdown, end of a script). Never raises."""
    client = _client
    if client is None:
        return
    try:
        client.flush()
    except Exception as exc:  # Langfuse down: nothing to do but note it
        log.debug("langfuse flush failed: %s", exc)


def shutdown() -> None:
    """Flush and stop Langfuse's background threads. Never raises."""
    client = _client
    if client is None:
        return
    try:
        client.shutdown()
    except Exception as exc:
        log.debug("langfuse shutdown failed: %s", exc)


FEEDBACK_SCORE = "user_feedback"  # the Langfuse score a caller's thumbs up (1) or down (0) becomes


def score_feedback(answer: Mapping[str, Any]) -> bool:
    """Send a rated answer (runtime.feedback's record) to Langfuse as a `user_feedback` score on its trace;
    True when handed to the SDK, False when tracing is off or the answer was not traced. Never raises."""
    trace_id = answer.get("trace_id")
    client = get_client() if trace_id else None
    if client is None:
        return False
    notes = [f"{k}: {answer[k]}" for k in ("comment", "correct_source", "correct_answer") if answer.get(k)]
    try:
        client.create_score(
            name=FEEDBACK_SCORE,
            value=1.0 if answer.get("rating") == "up" else 0.0,
            data_type="BOOLEAN",
            trace_id=trace_id,
            score_id=f"{FEEDBACK_SCORE}-{answer['answer_id']}",  # a new rating replaces the old one
            comment=" | ".join(notes)[:2000] or None,
        )
        return True
    except Exception as exc:  # a broken tracing setup must not fail the feedback
        log.debug("langfuse feedback score failed: %s", exc)
        return False


@functools.cache
def handler_class() -> type:
    """`RagrouteCallbackHandler`: Langfuse's LangChain handler plus ragroute's node attributes, route tag and
    faithfulness score. Built on first use, so langfuse is only imported when tracing is on."""
    from langfuse.langchain import CallbackHandler

    class RagrouteCallbackHandler(CallbackHandler):
        """Langfuse's LangChain handler plus ragroute's node attributes, route tag and faithfulness score."""

        def __init__(self, *, ctx: Any = None, public_key: str | None = None) -> None:
            super().__init__(public_key=public_key)
            self._ctx = ctx
            self._node_runs: dict[UUID, tuple[str, Any]] = {}  # run_id -> (node name, inputs)
            self._roots: dict[UUID, dict[str, Any]] = {}  # root run -> route, faithfulness, usage so far

        # ------------------------------------------------------------------ node attributes

        def on_chain_start(
            self,
            serialized: Any,
            inputs: Any,
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            tags: list[str] | None = None,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> Any:
            """Start the span (input summarized); remember which graph node (if any) this run is."""
            if self._private():
                inputs = _redacted(inputs)
            result = super().on_chain_start(
                serialized,
                summary(inputs, detail=False),
                run_id=run_id,
                parent_run_id=parent_run_id,
                tags=public_tags(tags),
                metadata=public_metadata(metadata),
                **self._trimmed(kwargs),
            )
            try:
                if parent_run_id is None:
                    self._roots[run_id] = {
                        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
                    }
                    delivery = answer_ids.current()
                    if delivery is not None and delivery.answer_id and run_id in self._runs:
                        # the answer's feedback record names this trace, so a rating scores it
                        delivery.trace_id = self._runs[run_id].trace_id
                node = (metadata or {}).get("langgraph_node")
                name = kwargs.get("name") or (serialized or {}).get("name")
                if node and name == node:
                    self._node_runs[run_id] = (node, inputs)
            except Exception as exc:  # never let tracing bookkeeping break a run
                log.debug("trace bookkeeping failed: %s", exc)
            return result

        def on_chain_end(
            self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
        ) -> Any:
            """Attach ragroute attributes to node spans (route tag and score to the root), then end."""
            if self._private():
                outputs = _redacted(outputs)
            try:
                if run_id in self._node_runs:
                    node, inputs = self._node_runs.pop(run_id)
                    self._annotate_node(run_id, node, inputs, outputs)
                elif run_id in self._roots:
                    self._annotate_root(run_id, outputs, self._roots.pop(run_id))
            except Exception as exc:
                log.debug("trace annotation failed: %s", exc)
            return super().on_chain_end(
                summary(outputs), run_id=run_id, parent_run_id=parent_run_id, **self._trimmed(kwargs)
            )

        def on_chain_error(self, error: BaseException, **kwargs: Any) -> Any:
            """End the span as failed (its input summarized)."""
            return super().on_chain_error(error, **self._trimmed(kwargs))

        def on_llm_end(
            self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
        ) -> Any:
            """Add ragroute's price-table cost to the generation (Langfuse prices only models it knows)."""
            if self._private():
                response = _redacted_llm_result(response)
            try:
                obs = self._runs.get(run_id)
                usage = _llm_usage(response)
                if obs is not None and usage and self._ctx is not None and getattr(self._ctx, "llm", None):
                    p_in = providers.cost_usd(self._ctx.llm, usage[0], 0)
                    p_out = providers.cost_usd(self._ctx.llm, 0, usage[1])
                    obs.update(cost_details={"input": p_in, "output": p_out, "total": p_in + p_out})
            except Exception as exc:
                log.debug("llm cost annotation failed: %s", exc)
            return super().on_llm_end(response, run_id=run_id, parent_run_id=parent_run_id, **kwargs)

        def _trimmed(self, kwargs: dict[str, Any]) -> dict[str, Any]:
            """Callback kwargs with a summarized (and, when redacting, PII-free) `inputs` and without
            LangGraph's metadata and step tags."""
            out = dict(kwargs)
            if "inputs" in out:
                inputs = _redacted(out["inputs"]) if self._private() else out["inputs"]
                out["inputs"] = summary(inputs, detail=False)
            if "metadata" in out:
                out["metadata"] = public_metadata(out["metadata"])
            if "tags" in out:
                out["tags"] = public_tags(out["tags"])
            return out

        def _private(self) -> bool:
            """Whether this run redacts PII (Context.redact_query_pii): then no span gets raw text."""
            return bool(getattr(self._ctx, "redact_query_pii", False))

        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> Any:
            """Start the generation span (with PII replaced in the prompt messages when redacting)."""
            if self._private():
                messages = _redacted(messages)
            return super().on_chat_model_start(serialized, messages, **self._trimmed(kwargs))

        def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> Any:
            """Start the generation span (with PII replaced in the prompts when redacting)."""
            if self._private():
                prompts = _redacted(prompts)
            return super().on_llm_start(serialized, prompts, **self._trimmed(kwargs))

        def _take_root_trace_context(self, *, inputs: Any, metadata: dict[str, Any] | None) -> Any:
            """Give each question its own trace, even inside a non-Langfuse span (FastAPI's request)."""
            resume_key, trace_context = super()._take_root_trace_context(inputs=inputs, metadata=metadata)
            if trace_context is None and self._trace_context is None:
                from opentelemetry import trace

                current = trace.get_current_span()
                scope = getattr(getattr(current, "instrumentation_scope", None), "name", "")
                if current.get_span_context().is_valid and scope != "langfuse-sdk":
                    trace_context = {"trace_id": self._langfuse_client.create_trace_id()}
            return resume_key, trace_context

        def _annotate_node(self, run_id: UUID, node: str, inputs: Any, outputs: Any) -> None:
            obs = self._runs.get(run_id)
            if obs is None or not isinstance(outputs, dict):
                return
            outputs = {key: unwrap(value) for key, value in outputs.items()}  # Overwrite(...) -> value
            state = self._get_run_state(run_id)
            summary = self._roots.get(state.root_run_id, {}) if state is not None else {}
            summary.setdefault("usage", {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
            meta: dict[str, Any] = {}
            usage = outputs.get("usage")
            if isinstance(usage, dict) and any(usage.values()):
                meta["usage"] = usage
                total = summary["usage"]
                for key in total:
                    total[key] = round(total[key] + float(usage.get(key, 0) or 0), 6)
            if node == "classify":
                summary["route"] = outputs.get("route")
                meta.update(route=outputs.get("route"), route_reason=outputs.get("route_reason"))
            elif node == "retrieve":
                meta.update(self._retrieve_meta(inputs, outputs))
            elif node == "rerank":
                docs = outputs.get("documents") or []
                meta.update(k=outputs.get("k"), candidates=len(outputs.get("ranked") or []))
                meta.update(hits_summary(docs, "rerank_score"))
                for note in outputs.get("trace") or []:
                    if note.get("node") == "rerank":
                        meta.update(reranker=note.get("reranker"), k_reason=note.get("k_reason"))
            elif node == "prune":
                meta.update(sources=len(outputs.get("sources") or []), prune=outputs.get("prune_stats"))
            elif node == "generate":
                meta.update(
                    generator=outputs.get("generator"),
                    abstained=outputs.get("abstained"),
                    cited=outputs.get("draft_citations"),
                )
            elif node == "verify":
                if "faithfulness" in outputs:
                    summary["faithfulness"] = outputs.get("faithfulness")
                meta.update(faithfulness=outputs.get("faithfulness"), confidence=outputs.get("confidence"))
            elif node == "finalize":
                if "faithfulness" in outputs:
                    summary["faithfulness"] = outputs.get("faithfulness")
                meta.update(
                    citations=[c.get("doc_id") for c in outputs.get("citations") or []],
                    abstained=outputs.get("abstained"),
                )
            if outputs.get("degradations"):
                meta["degradations"] = outputs["degradations"]
            meta = {k: v for k, v in meta.items() if v is not None}
            if meta:
                obs.update(metadata=meta)

        def _retrieve_meta(self, inputs: Any, outputs: dict) -> dict[str, Any]:
            task = inputs if isinstance(inputs, dict) else {}
            retrievals = outputs.get("retrievals") or [{}]
            hits = retrievals[0].get("hits") or outputs.get("candidates") or []
            meta: dict[str, Any] = {
                "query": task.get("query"),
                "purpose": task.get("purpose"),
                "hits": len(hits),
                **hits_summary(hits),
            }
            ctx = self._ctx
            if ctx is not None:
                access = access_of(ctx)
                meta["k"] = ctx.candidate_k
                meta["filters"] = combined_filters(ctx, task.get("filters"))
                meta["access"] = (
                    {"groups": list(access.groups or []), "clearance": access.clearance}
                    if access
                    else "unrestricted"
                )
            elif task.get("filters"):
                meta["filters"] = task.get("filters")
            return meta

        def _annotate_root(self, run_id: UUID, outputs: Any, summary: dict[str, Any]) -> None:
            obs = self._runs.get(run_id)
            if obs is None:
                return
            out = outputs if isinstance(outputs, dict) else {}
            route = out.get("route") or summary.get("route")
            faith = out.get("faithfulness", summary.get("faithfulness"))
            usage = out.get("usage") if isinstance(out.get("usage"), dict) else None
            usage = usage if usage and any(usage.values()) else summary["usage"]
            meta = {"route": route, "faithfulness": faith, "usage": usage, "abstained": out.get("abstained")}
            meta["cache"] = run_stats()  # this run's retrieval cache hits/misses (ask/aask runs)
            obs.update(metadata={k: v for k, v in meta.items() if v is not None})
            if route:
                from langfuse._client.attributes import LangfuseOtelSpanAttributes as Attr

                span = obs._otel_span
                existing = list((getattr(span, "attributes", None) or {}).get(Attr.TRACE_TAGS, ()) or ())
                tags = sorted({*existing, "ragroute", f"route:{route}"})
                span.set_attribute(Attr.TRACE_TAGS, tags)
            if faith is not None:
                obs.score_trace(
                    name="faithfulness",
                    value=float(faith),
                    comment=f"route={route}; generator={out.get('generator')}",
                )

    return RagrouteCallbackHandler


def __getattr__(name: str) -> Any:
    if name == "RagrouteCallbackHandler":
        return handler_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _redacted(obj: Any, depth: int = 0) -> Any:
    """A copy of `obj` with PII replaced in every string (dicts, lists, tuples, LangChain messages)."""
    if isinstance(obj, str):
        return redact_query(obj) if obj.strip() else obj
    if depth > 32:
        return "<redacted: nested too deep>"
    if isinstance(obj, dict):
        return {k: _redacted(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redacted(v, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_redacted(v, depth + 1) for v in obj)
    if obj is None or isinstance(obj, bool | int | float):
        return obj
    content = getattr(obj, "content", None)
    if content is not None and callable(getattr(obj, "model_copy", None)):  # a LangChain message
        return obj.model_copy(update={"content": _redacted(content, depth + 1)})
    if isinstance(obj, Send):  # a routing function's fan-out carries the query
        return Send(obj.node, _redacted(obj.arg, depth + 1))
    # anything else would be serialized with its attributes: send its redacted text form instead
    return _redacted(repr(obj), depth + 1)


def _redacted_llm_result(response: Any) -> Any:
    """An LLMResult copy whose generated texts have PII replaced."""
    try:
        out = response.model_copy(deep=True)
        for gens in out.generations:
            for gen in gens:
                message = getattr(gen, "message", None)
                if message is not None:
                    gen.message = _redacted(message)
                gen.text = _redacted(gen.text)
        return out
    except Exception as exc:  # never send what could not be redacted
        log.debug("could not redact an LLM result: %s", exc)
        return type(response)(generations=[]) if hasattr(response, "generations") else None


def _llm_usage(response: Any) -> tuple[int, int] | None:
    try:
        for gens in response.generations:
            for gen in gens:
                meta = getattr(getattr(gen, "message", None), "usage_metadata", None)
                if meta:
                    return int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0))
    except (AttributeError, TypeError):
        return None
    return None


def callback_handler(ctx: Any = None) -> Any:
    """A fresh handler for one run, or None when tracing is off."""
    client = get_client()
    if client is None:
        return None
    try:
        return handler_class()(
            ctx=ctx,
            public_key=getattr(getattr(client, "_resources", None), "public_key", None)
            or os.environ.get("LANGFUSE_PUBLIC_KEY"),
        )
    except Exception as exc:
        log.debug("langfuse handler unavailable: %s", exc)
        return None


def traced_config(
    config: Mapping[str, Any] | None = None,
    *,
    ctx: Any = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: list[str] | None = None,
) -> RunnableConfig:
    """`config` plus a Langfuse handler and trace attributes (user, session, tags); unchanged when off.

    Ids not given here are read from `ctx.extra` ("user_id", "session_id", "tags"), so
    `ask(q, extra={"session_id": "chat-42", "user_id": "alice"})` groups traces by conversation."""
    out = cast(RunnableConfig, dict(config or {}))
    if not enabled():
        return out
    handler = callback_handler(ctx)
    if handler is None:
        return out
    extra = getattr(ctx, "extra", None) or {}
    user_id = user_id or extra.get("user_id")
    session_id = session_id or extra.get("session_id")
    if tags is None and isinstance(extra.get("tags"), list):
        tags = [str(t) for t in extra["tags"]]
    callbacks = out.get("callbacks")
    if callbacks is None:
        out["callbacks"] = [handler]
    elif isinstance(callbacks, list):
        out["callbacks"] = [*callbacks, handler]
    else:  # a CallbackManager: add as an inheritable handler
        callbacks.add_handler(handler, inherit=True)
    metadata = dict(out.get("metadata") or {})
    if user_id:
        metadata["langfuse_user_id"] = str(user_id)
    if session_id:
        metadata["langfuse_session_id"] = str(session_id)
    metadata.setdefault("langfuse_trace_name", "ragroute")
    metadata["langfuse_tags"] = sorted({"ragroute", *(tags or []), *metadata.get("langfuse_tags", [])})
    out["metadata"] = metadata
    out.setdefault("run_name", "ragroute")
    return out
