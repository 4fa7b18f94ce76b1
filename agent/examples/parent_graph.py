"""ragroute inside a larger app: the query graph as a subgraph node of a chat-style parent graph with a
checkpointer, and the retrieval tools in a tool-calling agent.

Run it:
    python -m ragroute.examples.parent_graph --index ~/.ragroute/index "What is the maximum token lifetime?"

Two ways to embed `build_graph()`:
- shared keys: if the parent state has `question` and the output keys, add the compiled graph directly
  (`builder.add_node("rag", build_graph().compile())`);
- a wrapper node (below): map the parent's state (chat messages) to ragroute's input and its output back.
The subgraph is compiled without a checkpointer, so it uses the parent's: one `thread_id` holds the whole
conversation, and a second invocation on the same thread continues where the first stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Checkpointer
from ragroute.context import Context
from ragroute.runtime.providers import Providers
from ragroute.tools.retrieval_tools import make_retrieval_tools
from ragroute.tools.types import AccessScope
from ragroute.workflow import build_graph
from typing_extensions import TypedDict


class ChatState(TypedDict, total=False):
    """The parent app's state: a conversation plus a log of what ragroute answered on each turn."""

    messages: Annotated[list[AnyMessage], add_messages]
    turns: Annotated[list[dict[str, Any]], operator.add]  # one entry per answered question


def build_parent_graph(checkpointer: Checkpointer | None = None, providers: Providers | None = None) -> Any:
    """A compiled parent graph: `ragroute` (the query graph, bound to `providers`) -> `log_turn`."""
    rag = build_graph(providers).compile(name="ragroute")  # no checkpointer of its own: inherits the parent's

    async def ask_ragroute(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        """Answer the latest user message with ragroute; the run's context flows into the subgraph."""
        question = str(state["messages"][-1].content)
        out = await rag.ainvoke({"question": question}, config)
        cited = ", ".join(f"[{c['n']}] {c['doc_id']}" for c in out.get("citations", []))
        reply = f"{out['answer']}\n\nSources: {cited}" if cited else out["answer"]
        turn = {
            "question": question,
            "answer": out["answer"],
            "route": out["route"],
            "citations": [c["doc_id"] for c in out.get("citations", [])],
            "faithfulness": out["faithfulness"],
        }
        return {"messages": [AIMessage(reply)], "turns": [turn]}

    builder = StateGraph(ChatState, context_schema=Context)
    builder.add_node("ragroute", ask_ragroute)
    builder.add_edge(START, "ragroute")
    builder.add_edge("ragroute", END)
    return builder.compile(checkpointer=checkpointer if checkpointer is not None else InMemorySaver())


def build_tool_agent(
    model: Any, index: Any, *, groups: list[str] | None = None, clearance: int | None = None
) -> Any:
    """A tool-calling agent (langchain `create_agent`) over ragroute's retrieval tools.

    The caller's access scope is bound into the tools, so the model can never search outside it."""
    from langchain.agents import create_agent  # langchain's agent stack loads only for this example

    access = None if groups is None and clearance is None else AccessScope(groups or [], clearance or 0)
    return create_agent(
        model,
        make_retrieval_tools(index, access),
        system_prompt="Answer from the knowledge base. Search first, cite doc_ids, say so when nothing fits.",
    )


async def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Ask two questions on one thread of the parent graph.")
    parser.add_argument("questions", nargs="+")
    parser.add_argument("--index", help="index folder (default: $RAGROUTE_INDEX_DIR or ~/.ragroute/index)")
    parser.add_argument("--thread", default="demo")
    args = parser.parse_args(argv)
    app = build_parent_graph()
    config: RunnableConfig = {"configurable": {"thread_id": args.thread}}
    for question in args.questions:
        result = await app.ainvoke(
            {"messages": [HumanMessage(question)]}, config, context=Context(index_dir=args.index)
        )
        print(f"> {question}\n{result['messages'][-1].content}\n")
    state = await app.aget_state(config)
    values = state.values
    print(f"thread {args.thread!r}: {len(values['messages'])} messages, {len(values['turns'])} turns")


if __name__ == "__main__":
    asyncio.run(_main())
