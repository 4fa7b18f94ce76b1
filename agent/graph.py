"""The ragroute query graph: classify -> (retrieve | expand | decompose) -> rerank -> prune -> generate ->
verify (-> retry prune | finalize). `graph` is compiled for LangGraph Studio / langgraph dev."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from agent.context import Context
from agent.state import InputState, OutputState, RAGState
from nodes.classify import classify
from nodes.decompose import decompose
from nodes.expand import expand
from nodes.finalize import finalize
from nodes.generate import generate
from nodes.prune import prune
from nodes.rerank import rerank
from nodes.retrieve import retrieve
from nodes.routing import after_classify, after_verify, fan_out
from nodes.verify import verify


def build_graph() -> StateGraph[RAGState, Context, InputState, OutputState]:
    """The uncompiled StateGraph builder (compile it with your own checkpointer if you need one)."""
    builder = StateGraph(RAGState, context_schema=Context, input_schema=InputState, output_schema=OutputState)
    builder.add_node("classify", classify)
    builder.add_node("expand", expand)
    builder.add_node("decompose", decompose)
    builder.add_node("retrieve", retrieve)
    builder.add_node("rerank", rerank)
    builder.add_node("prune", prune)
    builder.add_node("generate", generate)
    builder.add_node("verify", verify)
    builder.add_node("finalize", finalize)
    builder.add_edge(START, "classify")
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
