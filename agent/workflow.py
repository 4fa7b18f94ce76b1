"""The ragroute query graph: [condense ->] classify -> (retrieve | expand | decompose) -> rerank -> prune ->
generate -> verify (-> retry prune | finalize). `graph` is compiled for LangGraph Studio / langgraph dev.

Every node runs from graph.invoke/stream as well as graph.ainvoke/astream (ragroute.runtime.sync.node).
`build_graph(providers=Providers(...))` binds ready-made objects (an index, a chat model, a reranker) to
every node of that graph; `graph` is the unbound default.

A run on a thread (a checkpointer and a `thread_id`) that already holds earlier turns starts at condense,
which rewrites a follow-up into a standalone question; `graph` is compiled without a checkpointer (the
LangGraph server brings its own, `ragroute.ask(thread_id=...)` a SQLite one beside the index)."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from ragroute.context import Context
from ragroute.nodes.classify import classify
from ragroute.nodes.condense import condense
from ragroute.nodes.decompose import decompose
from ragroute.nodes.expand import expand
from ragroute.nodes.finalize import finalize
from ragroute.nodes.generate import generate
from ragroute.nodes.prune import prune
from ragroute.nodes.rerank import rerank
from ragroute.nodes.retrieve import retrieve
from ragroute.nodes.routing import after_classify, after_verify, at_start, fan_out
from ragroute.nodes.verify import verify
from ragroute.runtime.providers import Providers
from ragroute.runtime.sync import node as sync_node
from ragroute.state import InputState, OutputState, RAGState, RetrieveTask


def build_graph(providers: Providers | None = None) -> StateGraph[RAGState, Context, InputState, OutputState]:
    """The uncompiled StateGraph builder (compile it with your own checkpointer if you need one); every
    node runs with `providers` bound when given."""

    def node(afunc: Any) -> Any:
        return sync_node(afunc, providers=providers)

    builder = StateGraph(RAGState, context_schema=Context, input_schema=InputState, output_schema=OutputState)
    builder.add_node("condense", node(condense))
    builder.add_node("classify", node(classify))
    builder.add_node("expand", node(expand))
    builder.add_node("decompose", node(decompose))
    builder.add_node("retrieve", node(retrieve), input_schema=RetrieveTask)  # a Send payload
    builder.add_node("rerank", node(rerank))
    builder.add_node("prune", node(prune))
    builder.add_node("generate", node(generate))
    builder.add_node("verify", node(verify))
    builder.add_node("finalize", node(finalize))
    builder.add_conditional_edges(START, at_start, ["condense", "classify"])
    builder.add_edge("condense", "classify")
    builder.add_conditional_edges("classify", after_classify, ["retrieve", "expand", "decompose"])
    builder.add_conditional_edges("expand", fan_out, ["retrieve"])
    builder.add_conditional_edges("decompose", fan_out, ["retrieve"])
    builder.add_edge("retrieve", "rerank")
    builder.add_edge("rerank", "prune")
    builder.add_edge("prune", "generate")
    builder.add_edge("generate", "verify")
    builder.add_conditional_edges("verify", after_verify, ["prune", "finalize"])
    builder.add_edge("finalize", END)
    return builder


graph = build_graph().compile(name="ragroute")
