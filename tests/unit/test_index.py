"""HybridIndex: ingest/update/delete bookkeeping, search contract, filters+ACL on every path, persistence."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from ragroute.tools.errors import ConfigError, FilterError, IndexError_, InputError
from ragroute.tools.index import HybridIndex, IndexConfig
from ragroute.tools.types import AccessScope, Chunk, Parent

from tests.conftest import TINY_CORPUS, corpus_batch

ALL_CHUNKS = {c.chunk_id for _, chunks, *_ in corpus_batch() for c in chunks}
PUBLIC = AccessScope(groups=[], clearance=0)


def consistent(index: HybridIndex) -> None:
    sql = index.chunk_ids()
    assert index.vector_chunk_ids() == sql
    assert index.bm25.ids() == sql


def test_empty_index_returns_nothing(make_index):
    index = make_index(empty=True)
    assert index.search("anything") == []
    assert index.dense_search("anything") == []
    assert index.keyword_search("anything") == []
    assert index.stats()["chunks"] == 0


@pytest.mark.parametrize("query", ["", "   ", "\n"])
def test_empty_query_is_an_input_error(make_index, query):
    index = make_index(empty=True)
    with pytest.raises(InputError):
        index.search(query)


@pytest.mark.parametrize("k", [0, -1, 1001, 2.5, True])
def test_bad_k_is_an_input_error(make_index, k):
    index = make_index(empty=True)
    with pytest.raises(InputError, match="k must be"):
        index.search("tokens", k=k)


def test_ingest_counts_and_statuses(make_index):
    index = make_index()
    stats = index.stats()
    assert stats["documents"] == len(TINY_CORPUS)
    assert stats["chunks"] == len(ALL_CHUNKS) == stats["vectors"]
    assert index.chunk_ids() == ALL_CHUNKS
    consistent(index)
    # re-ingesting identical content changes nothing, not even the version
    v = index.version
    assert index.upsert_documents(corpus_batch()) == ["unchanged"] * len(TINY_CORPUS)
    assert index.version == v


def test_hybrid_search_finds_exact_identifier_and_paraphrase(make_index):
    index = make_index()
    hits = index.search("what does error E1042 mean", k=3)
    assert hits[0].doc_id == "incident"
    assert hits[0].ranks["bm25"] == 1
    para = index.search("how long is a login credential valid before it lapses", k=3)
    assert "auth" in {h.doc_id for h in para}


def test_hits_carry_fusion_details(make_index):
    index = make_index()
    hits = index.search("access tokens expire", k=5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.chunk_id for h in hits}) == len(hits)
    for h in hits:
        assert set(h.ranks) == {"dense", "bm25"}
        assert any(r is not None for r in h.ranks.values())
        for name, r in h.ranks.items():
            assert (r is not None) == (name in h.source_scores)
        assert h.metadata["doc_id"] == h.doc_id
        assert h.parent_id == f"{h.doc_id}::p0"
        assert h.text


def test_update_replaces_chunks_and_bumps_version(make_index):
    index = make_index()
    v = index.version
    new = Chunk(
        "auth::c0", "auth", "Access tokens now expire after 5 minutes.", {"title": "Authentication guide"}
    )
    status = index.upsert_document(
        "auth",
        [new],
        [Parent("auth::p0", "auth", new.text)],
        content_hash="h2",
        doc_metadata=TINY_CORPUS[0][3],
    )
    assert status == "updated"
    assert index.version == v + 1
    assert index.document_hash("auth") == "h2"
    assert index.get_chunk("auth::c1") is None
    assert "5 minutes" in index.get_chunk("auth::c0").text
    top = index.keyword_search("5 minutes", k=1)
    assert top[0].chunk_id == "auth::c0"
    consistent(index)


def test_delete_document(make_index):
    index = make_index()
    v = index.version
    assert index.delete_document("cats") is True
    assert index.delete_document("cats") is False
    assert index.version == v + 1
    assert all(h.doc_id != "cats" for h in index.search("office cat tuna", k=20))
    assert index.get_parent("cats::p0") is None
    consistent(index)


@pytest.mark.parametrize(
    "filters, expected_docs",
    [
        ({"doc_type": "technical"}, {"auth", "auth-old", "incident"}),
        ({"version": {"$gte": "2.10.0"}}, {"auth", "rrf", "incident", "deploy-de"}),
        ({"version": {"$lt": "2.10.0"}}, {"auth-old", "salary", "cats", "secret"}),
        ({"last_updated": {"$gte": "2025-01-01"}}, {"auth", "rrf", "incident", "deploy-de", "secret"}),
        ({"$or": [{"category": "hr"}, {"language": "de"}]}, {"salary", "deploy-de"}),
        ({"category": {"$nin": ["ops", "security"]}}, {"rrf", "salary", "cats", "secret"}),
    ],
)
def test_filters_apply_before_the_cut_on_every_path(make_index, filters, expected_docs):
    index = make_index()
    for fn in (index.search, index.dense_search, index.keyword_search):
        hits = (
            fn("the", k=50, filters=filters)
            if fn is index.keyword_search
            else fn("guide", k=50, filters=filters)
        )
        assert {h.doc_id for h in hits} <= expected_docs
    # dense search returns every allowed chunk when k covers them: nothing is cut before filtering
    dense = index.dense_search("anything at all", k=50, filters=filters)
    assert {h.doc_id for h in dense} == expected_docs


def test_acl_is_always_applied(make_index):
    index = make_index()
    q = "salary bands board acquisition error vector"
    public = {h.doc_id for h in index.search(q, k=50, access=PUBLIC)}
    assert public.isdisjoint({"salary", "secret", "incident"})
    eng = {h.doc_id for h in index.search(q, k=50, access=AccessScope(groups=["eng"], clearance=1))}
    assert "incident" in eng and eng.isdisjoint({"salary", "secret"})
    # the right group without the clearance is not enough
    low = {h.doc_id for h in index.dense_search(q, k=50, access=AccessScope(groups=["hr"], clearance=1))}
    assert "salary" not in low
    hr = {
        h.doc_id for h in index.keyword_search("salary", k=50, access=AccessScope(groups=["hr"], clearance=2))
    }
    assert hr == {"salary"}
    # a filter cannot widen the ACL
    sneaky = index.search(
        q, k=50, filters={"$or": [{"category": "board"}, {"category": "misc"}]}, access=PUBLIC
    )
    assert {h.doc_id for h in sneaky} == {"cats"}
    # unrestricted (trusted local) callers see everything
    assert "secret" in {h.doc_id for h in index.dense_search(q, k=50)}


def test_bad_filter_is_a_filter_error(make_index):
    index = make_index()
    with pytest.raises(FilterError, match=r"\$regex"):
        index.search("tokens", filters={"title": {"$regex": "a.*"}})


def test_weights_override_and_validation(make_index):
    index = make_index()
    q = "token refresh"
    dense_only = index.search(q, k=3, weights={"dense": 1.0, "bm25": 0.0})
    ref = index.dense_search(q, k=3)
    assert [h.chunk_id for h in dense_only] == [h.chunk_id for h in ref]
    with pytest.raises(ConfigError, match="unknown retriever"):
        index.search(q, weights={"sparse": 1.0})


def test_asearch_matches_search(make_index):
    index = make_index()
    sync = index.search("rotate the signing key", k=5, access=PUBLIC)
    hits = asyncio.run(index.asearch("rotate the signing key", k=5, access=PUBLIC))
    assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in sync]


def test_reopen_keeps_everything(make_index, embedder, tmp_path):
    index = make_index(path=str(tmp_path / "persist"))
    before = [(h.chunk_id, h.score) for h in index.search("tokens expire", k=5)]
    version = index.version
    index.close()
    snapshot = json.loads((tmp_path / "persist" / "bm25.json").read_text())
    assert snapshot["version"] == version and set(snapshot["tokens"]) == ALL_CHUNKS
    again = HybridIndex(IndexConfig(path=str(tmp_path / "persist")), embedder=embedder)
    try:
        assert again.version == version
        after = [(h.chunk_id, h.score) for h in again.search("tokens expire", k=5)]
        assert [c for c, _ in after] == [c for c, _ in before]
        assert [s for _, s in after] == pytest.approx([s for _, s in before])
        consistent(again)
    finally:
        again.close()


def test_reconcile_repairs_chroma(make_index):
    index = make_index()
    vid = index.backend.vector_ids()["cats::c0"]
    index.store.delete([vid])
    index.store.upsert(["ghost#1"], [[0.1] * 384], [{"chunk_id": "ghost"}])
    assert index.reconcile() == {"removed": 1, "reembedded": 1}
    consistent(index)
    assert index.dense_search("office cat", k=1)[0].chunk_id == "cats::c0"


def test_get_parent_chunk_and_listing(make_index):
    index = make_index()
    assert index.get_parent("rrf::p0").section == "Why hybrid search works"
    chunk = index.get_chunk("rrf::c1")
    assert chunk.metadata["doc_type"] == "conceptual" and chunk.parent_id == "rrf::p0"
    docs = {d["doc_id"]: d for d in index.list_documents()}
    assert set(docs) == {d for d, *_ in TINY_CORPUS}
    assert docs["rrf"]["n_chunks"] == 2


def test_bad_input_documents(make_index):
    index = make_index(empty=True)
    with pytest.raises(InputError, match="repeated"):
        index.upsert_document("d", [Chunk("x", "d", "a"), Chunk("x", "d", "b")], [], content_hash="h")
    with pytest.raises(InputError, match="content_hash"):
        index.upsert_document("d", [Chunk("x", "d", "a")], [], content_hash="")
    with pytest.raises(InputError, match="not allowed"):
        index.upsert_document("d", [Chunk("x", "d", "a", {"$where": 1})], [], content_hash="h")
    with pytest.raises(InputError, match="two documents"):
        index.upsert_documents(
            [("d1", [Chunk("x", "d1", "a")], [], "h1"), ("d2", [Chunk("x", "d2", "b")], [], "h2")]
        )
    assert index.version == 0


def test_config_validation(tmp_path):
    with pytest.raises(ConfigError, match="chroma_mode"):
        IndexConfig(path=str(tmp_path), chroma_mode="memory")
    with pytest.raises(ConfigError, match="rrf_k"):
        IndexConfig(path=str(tmp_path), rrf_k=-1)
    with pytest.raises(ConfigError, match="doc_type_weights"):
        IndexConfig(path=str(tmp_path), doc_type_weights={"technical": {"dense": -1}})
    with pytest.raises(ConfigError, match="collection"):
        IndexConfig(path=str(tmp_path), collection="x")


def test_second_process_is_locked_out(make_index, tmp_path):
    import subprocess
    import sys

    path = str(tmp_path / "locked")
    make_index(path=path, empty=True)
    code = (
        "from ragroute.tools.index import HybridIndex, IndexConfig\n"
        "from ragroute.tools.errors import IndexError_\n"
        "class E:\n    name='fake'\n    def embed_query(self, t): return [0.0]*384\n"
        "    def embed_documents(self, ts): return [[0.0]*384 for _ in ts]\n"
        f"try:\n    HybridIndex(IndexConfig(path={path!r}, lock_timeout_s=0.2), embedder=E())\n"
        "except IndexError_ as e:\n    print('LOCKED', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "LOCKED" in out.stdout, out.stderr
    assert IndexError_  # exported name used by callers


def test_searches_run_while_a_batch_is_ingested(make_index):
    import threading

    index = make_index()
    extra = [
        (f"bulk{i}", f"Bulk {i}", f"bulk filler document number {i} about tokens", {}) for i in range(40)
    ]
    errors: list[BaseException] = []
    results: list[set[str]] = []
    stop = threading.Event()

    def searcher():
        while not stop.is_set():
            try:
                hits = index.search("tokens", k=50, filters={"doc_type": {"$ne": "policy"}}, access=PUBLIC)
                results.append({h.doc_id for h in hits})
            except BaseException as exc:  # the test reports any failure
                errors.append(exc)
                return

    t = threading.Thread(target=searcher)
    t.start()
    try:
        index.upsert_documents(corpus_batch(extra))
        index.delete_document("cats")
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors
    assert results and all("auth" in r and "secret" not in r for r in results)
    consistent(index)


def test_chroma_is_reconciled_before_its_first_use(make_index, embedder):
    """With lazy_vectors, stats and soft deletes leave Chroma closed; the first dense use (here the scrub
    of a hard delete) reconciles it first, so the vectors a soft delete left behind are gone before it
    runs."""
    secret = b"Okapi Ledger 4417"
    corpus = [
        ("okapi", secret.decode(), "The okapi ledger lists every zebra crossing.", {}),
        ("cats", "Cats", "The office cat sleeps on the warm server rack.", {}),
    ]
    first = make_index(corpus)
    path = first.path
    first.close()

    def on_disk() -> bool:
        return any(secret in f.read_bytes() for f in Path(path).rglob("*") if f.is_file())

    def reopen() -> HybridIndex:
        return HybridIndex(IndexConfig(path=path, lazy_vectors=True), embedder=embedder)

    index = reopen()
    assert index.stats()["vectors"] == 2  # SQLite's vector ids: Chroma is not opened for stats
    assert index.delete_document("okapi", soft=True)
    index.close()
    index = reopen()
    try:
        assert index.delete_document("okapi", soft=False)
        assert not on_disk()
        assert [h.doc_id for h in index.dense_search("okapi ledger zebra", k=2)] == ["cats"]
        assert index.stats()["vectors"] == 1
        consistent(index)
    finally:
        index.close()


def test_soft_delete_drops_vectors_another_instance_has_open(make_index, embedder):
    """Chroma open in one instance: a soft delete through another one drops the vectors at once."""
    reader = make_index()
    assert reader.dense_search("office cat", k=1)[0].chunk_id == "cats::c0"  # Chroma open here
    writer = HybridIndex(IndexConfig(path=reader.path, lazy_vectors=True), embedder=embedder)
    try:
        assert writer.stats()["vectors"] == len(ALL_CHUNKS)
        assert writer.delete_document("cats", soft=True)
        assert "cats::c0" not in reader.chunk_ids()
        assert reader.vector_chunk_ids() == reader.chunk_ids()
    finally:
        writer.close()
