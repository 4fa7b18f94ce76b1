"""Attempts to read a document the caller may not see: through filters, crafted queries, every retrieval
path (dense, BM25, hybrid, async, LangChain tools and retriever, the graph's expand and multi-hop routes),
direct chunk/parent lookups, the streaming API and the retrieval cache. Every attempt must fail, and a
caller who may see the document must see it (so the tests can fail)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from ragroute.api import aask, astream
from ragroute.runtime import caching, providers
from ragroute.tools.cache import RagCache
from ragroute.tools.index import HybridIndex, IndexConfig
from ragroute.tools.ingest import ingest_documents, ingest_paths
from ragroute.tools.retrieval_tools import HybridRetriever, make_retrieval_tools
from ragroute.tools.types import AccessScope, Document

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "agent", "sample_corpus")
SECRET_DOC = "incident-runbook.md"  # access_groups [ops, sre], security_level 2
# words that occur only in the restricted runbook
MARKERS = ("breakglass", "heartbeat", "failover", "orbit-db-rotate", "Incident Runbook")
SECRET_TEXT = (
    "The metadata database credentials are rotated by the vault job `orbit-db-rotate` every Sunday at "
    "02:00 UTC. During an incident, the break-glass account is `orbit_breakglass`"
)

ALLOWED = AccessScope(groups=["ops"], clearance=2)
# wrong group with high clearance, right group with low clearance, nobody, and an empty-looking scope
DENIED = {
    "wrong-group-high-clearance": AccessScope(groups=["eng", "hr"], clearance=9),
    "right-group-low-clearance": AccessScope(groups=["ops", "sre"], clearance=1),
    "no-groups": AccessScope(groups=[], clearance=0),
    "groups-none-clearance-5": AccessScope(groups=None, clearance=5),
    "case-and-space-variants": AccessScope(groups=["OPS", " ops", "ops ", "sre*"], clearance=2),
}
DENIED_IDS = list(DENIED)

CRAFTED_QUERIES = [
    SECRET_TEXT,
    "orbit_breakglass break-glass account",
    "scheduler heartbeat failover standby orbit admin",
    "Orbit Incident Runbook (internal)",
    "incident-runbook.md",
]

SNEAKY_FILTERS: list[dict[str, Any]] = [
    {"$or": [{"access_groups": "ops"}, {"access_groups": {"$ne": "nobody"}}]},
    {"access_groups": {"$in": ["ops", "sre"]}},
    {"security_level": {"$gte": 0}},
    {"security_level": {"$lte": 100}},
    {"doc_id": SECRET_DOC},
    {"doc_id": {"$in": [SECRET_DOC, "faq.txt"]}},
    {"$or": [{"doc_id": SECRET_DOC}, {"doc_id": {"$ne": SECRET_DOC}}]},
    {"category": "operations"},
    {"title": "Orbit Incident Runbook (internal)"},
    {
        "$and": [
            {"doc_type": "technical"},
            {"$or": [{"version": {"$gte": "0.0.1"}}, {"version": {"$ne": "x"}}]},
        ]
    },
]


def leaks(blob: Any) -> list[str]:
    """Secret markers or the secret doc id anywhere in a JSON-able value."""
    text = json.dumps(blob, default=lambda o: getattr(o, "__dict__", str(o)), ensure_ascii=False)
    found = [m for m in MARKERS if m.lower() in text.lower()]
    if SECRET_DOC in text:
        found.append(SECRET_DOC)
    return found


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: Any, embedder: Any) -> Any:
    """The sample corpus in a fresh index (graph runs are given it as Providers(index=...))."""
    path = str(tmp_path_factory.mktemp("acl") / "index")
    index = HybridIndex(IndexConfig(path=path), embedder=embedder)
    report = ingest_paths(index, [SAMPLE], progress=False)
    assert SECRET_DOC in report.added and not report.failed
    yield index
    index.close()


def secret_chunks(index: Any) -> list[str]:
    return sorted(c for c in index.chunk_ids() if c.startswith(SECRET_DOC))


def heartbeat_chunk(index: Any) -> str:
    """The runbook chunk about the scheduler heartbeat, found by content: chunk ids hash the source path,
    so their sorted order differs between checkouts."""
    found = [c for c in secret_chunks(index) if "heartbeat" in index.get_chunk(c).text]
    assert found, secret_chunks(index)
    return found[0]


# ---------------------------------------------------------------------------------------- positive control


def test_the_allowed_caller_does_find_the_runbook(sample_index):
    for query in CRAFTED_QUERIES[:3]:
        hits = sample_index.search(query, 5, access=ALLOWED)
        assert hits and hits[0].doc_id == SECRET_DOC, query
    assert sample_index.get_chunk(secret_chunks(sample_index)[0], access=ALLOWED) is not None
    hits = sample_index.search(SECRET_TEXT, 3, filters={"doc_id": SECRET_DOC})  # unrestricted: admin
    assert hits and hits[0].doc_id == SECRET_DOC


# --------------------------------------------------------------------------------------- index read paths


@pytest.mark.parametrize("who", DENIED_IDS)
@pytest.mark.parametrize("query", CRAFTED_QUERIES)
async def test_crafted_queries_on_every_index_path(sample_index, who, query):
    access = DENIED[who]
    k = 50  # ask for everything there is
    results = {
        "search": sample_index.search(query, k, access=access),
        "dense": sample_index.dense_search(query, k, access=access),
        "keyword": sample_index.keyword_search(query, k, access=access),
        "asearch": await sample_index.asearch(query, k, access=access),
        "wide": sample_index.search(query, k, access=access, candidate_k=1000, weights={"bm25": 5.0}),
    }
    assert results["dense"] and results["search"], "the public documents must still be searchable"
    for path, hits in results.items():
        assert not leaks([h.to_dict() for h in hits]), (path, who, query)


@pytest.mark.parametrize("who", DENIED_IDS)
@pytest.mark.parametrize("filters", SNEAKY_FILTERS, ids=[json.dumps(f)[:40] for f in SNEAKY_FILTERS])
async def test_filters_cannot_widen_the_acl(sample_index, who, filters):
    access = DENIED[who]
    for query in (SECRET_TEXT, "scheduler heartbeat failover"):
        for hits in (
            sample_index.search(query, 50, filters=filters, access=access),
            sample_index.dense_search(query, 50, filters=filters, access=access),
            sample_index.keyword_search(query, 50, filters=filters, access=access),
            await sample_index.asearch(query, 50, filters=filters, access=access),
        ):
            assert not leaks([h.to_dict() for h in hits]), (who, filters)


@pytest.mark.parametrize(
    "filters",
    [
        {"acl__public": True},
        {"acl__g__ops": True},
        {"acl__level": {"$lte": 10}},
        {'access_groups__has__"ops"': True},
        {"$or": [{"acl__public": False}, {"faq": 1}]},
    ],
)
def test_filters_on_the_acl_shadow_keys_are_rejected(sample_index, filters):
    from ragroute.tools.errors import FilterError

    with pytest.raises(FilterError):
        sample_index.search("heartbeat", 5, filters=filters, access=DENIED["no-groups"])


@pytest.mark.parametrize("who", DENIED_IDS)
def test_direct_lookups_hide_the_document(sample_index, who):
    access = DENIED[who]
    for cid in secret_chunks(sample_index):
        assert sample_index.get_chunk(cid, access=access) is None
        chunk = sample_index.get_chunk(cid, access=ALLOWED)
        assert chunk is not None and chunk.parent_id
        assert sample_index.get_parent(chunk.parent_id, access=access) is None
        assert sample_index.get_parent(chunk.parent_id, access=ALLOWED) is not None


# ------------------------------------------------------------------------------------- LangChain bindings


@pytest.mark.parametrize("who", DENIED_IDS)
async def test_langchain_tools_and_retriever(sample_index, who):
    access = DENIED[who]
    search, passage, parent = make_retrieval_tools(sample_index, access)
    for query in CRAFTED_QUERIES:
        for filters in (None, {"doc_id": SECRET_DOC}, {"security_level": {"$gte": 0}}):
            args = {"query": query, "k": 20, "filters": filters}
            assert not leaks(search.invoke(args)), (query, filters)
            assert not leaks(await search.ainvoke(args)), (query, filters)
    # an LLM cannot pass the ACL as an argument
    with_acl = {"query": SECRET_TEXT, "k": 20, "access": {"groups": ["ops"], "clearance": 9}}
    out = search.invoke(with_acl)
    assert not leaks(out)
    for cid in secret_chunks(sample_index):
        # a hidden passage answers exactly like a missing one (the caller's own id echoed, nothing else)
        assert passage.invoke({"chunk_id": cid}) == f"no passage with chunk_id {cid!r}"
        assert passage.invoke({"chunk_id": cid + "x"}) == f"no passage with chunk_id {cid + 'x'!r}"
        pid = sample_index.get_chunk(cid).parent_id
        assert parent.invoke({"parent_id": pid}) == f"no section with parent_id {pid!r}"
    retriever = HybridRetriever(index=sample_index, k=50, access=access)
    for query in CRAFTED_QUERIES:
        docs = retriever.invoke(query)
        assert docs and not leaks([d.page_content for d in docs] + [d.metadata for d in docs])
        adocs = await retriever.ainvoke(query)
        assert adocs and not leaks([d.page_content for d in adocs] + [d.metadata for d in adocs])
    sneaky = HybridRetriever(index=sample_index, k=50, access=access, filters={"doc_id": SECRET_DOC})
    assert sneaky.invoke(SECRET_TEXT) == []


def test_tools_for_the_allowed_caller_do_return_the_runbook(sample_index):
    search, passage, _ = make_retrieval_tools(sample_index, ALLOWED)
    assert "breakglass" in search.invoke({"query": "break-glass account", "k": 5})
    assert "heartbeat" in passage.invoke({"chunk_id": heartbeat_chunk(sample_index)})


# ------------------------------------------------------------------------------------------------- graph

GRAPH_QUESTIONS = [
    "What is the break-glass account used during an incident?",
    "How do I fail over a stalled scheduler, and which vault job rotates database credentials?",
    SECRET_TEXT,
]


@pytest.mark.parametrize("route", ["simple", "expand", "multihop", "auto"])
@pytest.mark.parametrize("who", ["wrong-group-high-clearance", "right-group-low-clearance", "no-groups"])
async def test_graph_routes_never_surface_the_runbook(sample_index, route, who):
    access = DENIED[who]
    for question in GRAPH_QUESTIONS:
        out = await aask(
            question,
            providers=providers.Providers(index=sample_index),
            route=route,
            user_groups=access.groups,
            clearance=access.clearance,
            filters={"$or": [{"doc_id": SECRET_DOC}, {"security_level": {"$gte": 0}}]},
        )
        assert not any(c.startswith(SECRET_DOC) for c in out["retrieved"] + out["contexts"]), out
        assert not leaks(out["answer"]) and not leaks(out["citations"]), out


async def test_graph_positive_control_and_stream(sample_index):
    out = await aask(
        GRAPH_QUESTIONS[0],
        providers=providers.Providers(index=sample_index),
        user_groups=["sre"],
        clearance=2,
    )
    assert any(c.startswith(SECRET_DOC) for c in out["retrieved"])
    assert "breakglass" in out["answer"] and out["citations"][0]["doc_id"] == SECRET_DOC
    events = [
        e
        async for e in astream(
            GRAPH_QUESTIONS[1],
            providers=providers.Providers(index=sample_index),
            route="expand",
            user_groups=["eng"],
            clearance=9,
        )
    ]
    assert events[-1]["type"] == "result"
    assert not leaks([e for e in events]), "a streamed node update carried the restricted document"


# ------------------------------------------------------------------------------------------------- cache


@pytest.fixture
def live_cache() -> Any:
    """A fresh process-wide cache: the retrieval cache every graph search goes through."""
    fresh = caching.set_cache(None)
    yield fresh
    caching.set_cache(None)


def live_search(index: Any, query: str, k: int, *, access: AccessScope | None, **kw: Any) -> list[Any]:
    """One search through the query path's retrieval cache (ragroute.runtime.caching.search)."""
    args: dict[str, Any] = {"filters": None, "weights": None, "candidate_k": k, **kw}
    return caching.search(index, query, k, access=access, **args)


@pytest.mark.parametrize("admin", [None, ALLOWED, AccessScope(groups=["sre", "ops"], clearance=3)])
def test_cache_poisoning_by_a_privileged_caller(sample_index, live_cache: RagCache, admin):
    warm = live_search(sample_index, SECRET_TEXT, 5, access=admin)
    assert warm[0].doc_id == SECRET_DOC  # the privileged caller's result is in the cache now
    assert live_search(sample_index, SECRET_TEXT, 5, access=admin)[0].doc_id == SECRET_DOC
    assert live_cache.retrieval.stats()["hits"] == 1
    for who, access in DENIED.items():
        for kw in ({}, {"filters": {"doc_id": SECRET_DOC}}):
            got = live_search(sample_index, SECRET_TEXT, 5, access=access, **kw)
            assert not leaks([h.to_dict() for h in got]), (who, kw)


def test_cached_results_follow_an_acl_change(tmp_path, embedder, live_cache: RagCache):
    """A document that was public when cached and is then restricted must disappear from cached results."""
    index = HybridIndex(IndexConfig(path=str(tmp_path / "ix")), embedder=embedder)
    try:
        doc = Document(doc_id="plan", text="The merger code name is Bluebird.", title="Plan", format="text")
        ingest_documents(index, [doc], progress=False)
        public = AccessScope(groups=[], clearance=0)
        assert live_search(index, "merger code name", 3, access=public)[0].doc_id == "plan"
        assert live_search(index, "merger code name", 3, access=public)[0].doc_id == "plan"
        assert live_cache.retrieval.stats()["hits"] == 1  # so the next miss is the ingest's doing
        restricted = Document(
            doc_id="plan",
            text=doc.text,
            title="Plan",
            format="text",
            metadata={"access_groups": ["board"], "security_level": 3},
        )
        ingest_documents(index, [restricted], progress=False)
        assert live_search(index, "merger code name", 3, access=public) == []
        board = AccessScope(groups=["board"], clearance=3)
        assert live_search(index, "merger code name", 3, access=board)[0].doc_id == "plan"
    finally:
        index.close()


def test_mutating_cached_hits_cannot_poison_other_callers(sample_index, live_cache: RagCache):
    public = AccessScope(groups=[], clearance=0)
    hits = live_search(sample_index, "how do I install orbit", 3, access=public)
    assert hits
    secret = sample_index.get_chunk(secret_chunks(sample_index)[1])
    for h in hits:  # a buggy caller rewrites its copy with restricted content
        h.text, h.doc_id = secret.text, SECRET_DOC
    again = live_search(sample_index, "how do I install orbit", 3, access=public)
    assert again and not leaks([h.to_dict() for h in again])
    assert live_cache.retrieval.stats()["hits"] == 1


@pytest.mark.parametrize(
    "acl",
    [
        {"access_groups": [], "security_level": "3"},  # a level given as text
        {"access_groups": [], "security_level": float("nan")},
        {"access_groups": True, "security_level": 0},
        {"access_groups": {"board": 1}, "security_level": 0},
        {"access_groups": [["board"]], "security_level": 0},
    ],
    ids=["level-as-text", "level-nan", "groups-bool", "groups-dict", "groups-nested"],
)
async def test_malformed_acl_metadata_fails_closed(make_index, acl):
    """Chunks written through the index API without ingest's validation: a malformed ACL hides the chunk
    from every restricted caller on both retrieval paths instead of making it public."""
    corpus = [
        ("memo", "Memo", "The Bluebird merger closes in March.", acl),
        ("pets", "Office pets", "The office cat sleeps on the warm server rack.", {}),
    ]
    index = make_index(corpus)
    for access in (AccessScope(groups=[], clearance=0), AccessScope(groups=["board"], clearance=9)):
        for hits in (
            index.search("Bluebird merger", 5, access=access),
            index.dense_search("Bluebird merger", 5, access=access),
            index.keyword_search("Bluebird merger", 5, access=access),
            await index.asearch("Bluebird merger", 5, access=access),
        ):
            assert "memo" not in {h.doc_id for h in hits}
        assert index.get_chunk("memo::c0", access=access) is None
    assert index.search("Bluebird merger", 1)[0].doc_id == "memo"  # an unrestricted (local) caller sees it
