"""LangChain tools and retriever: schemas, ACL bound outside the LLM's reach, errors returned as text."""

from __future__ import annotations

import asyncio
import json

from langchain_core.documents import Document
from ragroute.tools.retrieval_tools import HybridRetriever, make_retrieval_tools
from ragroute.tools.types import AccessScope

PUBLIC = AccessScope(groups=[], clearance=0)


def by_name(tools):
    return {t.name: t for t in tools}


def test_tool_schemas_do_not_expose_acl(make_index):
    tools = by_name(make_retrieval_tools(make_index(empty=True), PUBLIC))
    assert set(tools) == {"search_documents", "get_passage", "get_parent_section"}
    schema = tools["search_documents"].args
    assert set(schema) == {"query", "k", "filters"}
    for t in tools.values():
        assert not {"access", "groups", "clearance", "access_groups"} & set(t.args)
        assert t.description


def test_search_tool_returns_json_hits_and_respects_acl(make_index):
    index = make_index()
    search = by_name(make_retrieval_tools(index, PUBLIC))["search_documents"]
    out = json.loads(search.invoke({"query": "error E1042 salary board acquisition", "k": 10}))
    docs = {h["doc_id"] for h in out}
    assert docs and docs.isdisjoint({"incident", "salary", "secret"})
    assert {"chunk_id", "doc_id", "title", "section", "score", "parent_id", "text"} <= set(out[0])
    # an LLM trying to smuggle ACL keys through filters cannot widen access
    sneaky = json.loads(
        search.invoke({"query": "board acquisition", "k": 10, "filters": {"category": "board"}})
    )
    assert sneaky == []
    hr = by_name(make_retrieval_tools(index, AccessScope(groups=["hr"], clearance=2)))["search_documents"]
    assert "salary" in {h["doc_id"] for h in json.loads(hr.invoke({"query": "salary bands", "k": 3}))}


def test_search_tool_filters_and_errors_come_back_as_text(make_index):
    index = make_index()
    search = by_name(make_retrieval_tools(index))["search_documents"]
    out = json.loads(search.invoke({"query": "tokens", "k": 10, "filters": {"version": {"$lt": "2.10.0"}}}))
    assert {h["doc_id"] for h in out} == {"auth-old", "salary", "cats", "secret"}  # unrestricted
    msg = search.invoke({"query": "tokens", "filters": {"version": {"$regex": "2"}}})
    assert "bad filters" in msg and "$regex" in msg
    assert "empty" in search.invoke({"query": "  "})


def test_async_search_tool(make_index):
    index = make_index()
    search = by_name(make_retrieval_tools(index, PUBLIC))["search_documents"]
    out = json.loads(asyncio.run(search.ainvoke({"query": "reciprocal rank fusion", "k": 2})))
    assert out[0]["doc_id"] == "rrf"


def test_passage_and_parent_tools_hide_forbidden_content(make_index):
    index = make_index()
    tools = by_name(make_retrieval_tools(index, PUBLIC))
    passage = json.loads(tools["get_passage"].invoke({"chunk_id": "auth::c1"}))
    assert "rotate" in passage["text"] and passage["metadata"]["doc_type"] == "technical"
    parent = json.loads(tools["get_parent_section"].invoke({"parent_id": "auth::p0"}))
    assert "Refresh tokens" in parent["text"]
    assert "no passage" in tools["get_passage"].invoke({"chunk_id": "secret::c0"})
    assert "no section" in tools["get_parent_section"].invoke({"parent_id": "secret::p0"})
    admin = by_name(make_retrieval_tools(index, AccessScope(groups=["board"], clearance=3)))
    assert "acquisition" in admin["get_parent_section"].invoke({"parent_id": "secret::p0"})


def test_hybrid_retriever_returns_documents_with_scores(make_index):
    index = make_index()
    retriever = HybridRetriever(index=index, k=3, access=PUBLIC)
    docs = retriever.invoke("when do access tokens expire")
    assert docs and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.metadata["doc_id"] == "auth" and top.metadata["chunk_id"] == top.id
    assert set(top.metadata["ranks"]) == {"dense", "bm25"} and top.metadata["score"] > 0
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    adocs = asyncio.run(retriever.ainvoke("when do access tokens expire"))
    assert [d.id for d in adocs] == [d.id for d in docs]
    filtered = HybridRetriever(index=index, k=5, filters={"language": "de"}).invoke("deployment docker")
    assert {d.metadata["doc_id"] for d in filtered} == {"deploy-de"}


def test_hybrid_retriever_reads_public_documents_unless_told_otherwise(make_index):
    index = make_index()
    query = "board acquisition vector database startup"
    assert "secret" not in {d.metadata["doc_id"] for d in HybridRetriever(index=index, k=10).invoke(query)}
    everything = HybridRetriever(index=index, k=10, all_access=True).invoke(query)
    assert "secret" in {d.metadata["doc_id"] for d in everything}
    # k and filters per call; the scope stays what the retriever was built with
    per_call = HybridRetriever(index=index, k=10).invoke(query, k=1, filters={"category": "board"})
    assert per_call == []
    assert len(HybridRetriever(index=index, k=10).invoke("deployment docker", k=2)) == 2
