"""The embedding examples run for real: ragroute as a subgraph of a checkpointed parent graph (state kept per
thread_id across invocations, context and ACL flowing into the subgraph), and the retrieval tools driven by
a tool-calling agent with a scripted chat model."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from ragroute.context import Context
from ragroute.examples.parent_graph import build_parent_graph, build_tool_agent
from ragroute.runtime.providers import Providers


def thread(tid: str) -> dict:
    return {"configurable": {"thread_id": tid}}


async def test_parent_graph_keeps_state_per_thread_across_invocations(make_index: Any) -> None:
    index = make_index()
    saver = InMemorySaver()
    app = build_parent_graph(saver, Providers(index=index))
    ctx = Context(reranker="none")

    first = await app.ainvoke(
        {"messages": [HumanMessage("How long do access tokens last?")]}, thread("t1"), context=ctx
    )
    assert len(first["messages"]) == 2 and len(first["turns"]) == 1
    assert "15 minutes" in first["messages"][-1].content and "auth" in first["turns"][0]["citations"]

    second = await app.ainvoke(
        {"messages": [HumanMessage("What does reciprocal rank fusion combine?")]}, thread("t1"), context=ctx
    )
    # the second call continued the checkpointed thread: both turns and all four messages are there
    assert [m.type for m in second["messages"]] == ["human", "ai", "human", "ai"]
    assert [t["question"] for t in second["turns"]] == [
        "How long do access tokens last?",
        "What does reciprocal rank fusion combine?",
    ]
    assert "rrf" in second["turns"][1]["citations"]

    # a fresh app on the same saver resumes the thread; another thread_id starts empty
    resumed = build_parent_graph(saver, Providers(index=index))
    assert len((await resumed.aget_state(thread("t1"))).values["turns"]) == 2
    assert (await resumed.aget_state(thread("t2"))).values == {}
    other = await resumed.ainvoke(
        {"messages": [HumanMessage("Where does the office cat sleep?")]}, thread("t2"), context=ctx
    )
    assert len(other["messages"]) == 2 and other["turns"][0]["citations"] == ["cats"]
    history = [s async for s in resumed.aget_state_history(thread("t1"))]
    assert len(history) >= 4  # input + node checkpoints for both invocations


async def test_context_and_acl_flow_into_the_subgraph(make_index: Any) -> None:
    index = make_index()
    app = build_parent_graph(providers=Providers(index=index))
    question = {"messages": [HumanMessage("When are engineering salary bands reviewed?")]}
    hr = await app.ainvoke(question, thread("hr"), context=Context(user_groups=["hr"], clearance=2))
    assert "salary" in hr["turns"][0]["citations"] and "April" in hr["turns"][0]["answer"]
    eng = await app.ainvoke(question, thread("eng"), context=Context(user_groups=["eng"], clearance=1))
    assert "salary" not in eng["turns"][0]["citations"] and "April" not in eng["turns"][0]["answer"]


class ScriptedToolCaller(BaseChatModel):
    """Calls search_documents with the user's question, then answers with the doc ids it got back."""

    calls: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        assert {t.name for t in tools} == {"search_documents", "get_passage", "get_parent_section"}
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.calls.append(list(messages))
        last = messages[-1]
        if isinstance(last, ToolMessage):
            docs = [hit["doc_id"] for hit in json.loads(last.content)]
            reply = AIMessage(f"Top sources: {', '.join(docs)}")
        else:
            question = next(m.content for m in messages if isinstance(m, HumanMessage))
            reply = AIMessage(
                "",
                tool_calls=[
                    {"name": "search_documents", "args": {"query": question, "k": 3}, "id": "call-1"}
                ],
            )
        return ChatResult(generations=[ChatGeneration(message=reply)])


async def test_tool_calling_agent_uses_the_retrieval_tools_within_its_access(make_index: Any) -> None:
    index = make_index()
    model = ScriptedToolCaller()
    agent = build_tool_agent(model, index, groups=["eng"], clearance=1)
    out = await agent.ainvoke({"messages": [HumanMessage("What does error E1042 mean?")]})
    tool_msgs = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_msgs) == 1 and tool_msgs[0].name == "search_documents"
    hits = json.loads(tool_msgs[0].content)
    assert hits[0]["doc_id"] == "incident"  # eng/clearance 1 may read the incident runbook
    assert out["messages"][-1].content.startswith("Top sources: incident")

    # the same question about salaries: the hr-only document never reaches the model
    out = await agent.ainvoke({"messages": [HumanMessage("engineering salary bands compensation committee")]})
    seen = json.loads([m for m in out["messages"] if isinstance(m, ToolMessage)][0].content)
    assert "salary" not in {h["doc_id"] for h in seen}
