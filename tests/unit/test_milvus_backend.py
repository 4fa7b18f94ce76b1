"""MilvusBackend on a real Milvus Lite file with the real MiniLM embedder: writes, searches with filters and
ACL, soft delete / restore / purge, the generation protocol (an uncommitted write is invisible, reconcile
removes it), two handles on one index, location parsing and the clear errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ragroute.tools.errors import ConfigError, IndexError_, InputError
from ragroute.tools.index import HybridIndex, IndexConfig, open_index
from ragroute.tools.index import milvus_registry as R
from ragroute.tools.index.milvus_location import parse_location
from ragroute.tools.index.milvus_rows import chunk_rows
from ragroute.tools.index.records import prepare_batch
from ragroute.tools.types import AccessScope, Chunk, Parent

from tests.conftest import TINY_CORPUS, corpus_batch

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGROUTE_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[HybridIndex]:
    """One TINY_CORPUS index for the tests that only read (creating a Lite index takes ~5 s)."""
    folder = tmp_path_factory.mktemp("milvus-shared")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAGROUTE_STATE_DIR", str(folder / "state"))
        idx = open_index(f"milvus://{folder / 'shared.db'}", embedder=embedder)
    idx.upsert_documents(corpus_batch())
    yield idx
    idx.close()


@pytest.fixture
def lite_url(tmp_path: Path) -> str:
    return f"milvus://{tmp_path / 'index.db'}"


@pytest.fixture
def index(lite_url: str, embedder: Any) -> Iterator[HybridIndex]:
    idx = open_index(lite_url, embedder=embedder)
    idx.upsert_documents(corpus_batch())
    yield idx
    idx.close()


def ids(hits: list[Any]) -> list[str]:
    return [h.doc_id for h in hits]


def test_location_forms(tmp_path: Path) -> None:
    lite = parse_location("milvus:///data/x.db?name=docs")
    assert (lite.uri, lite.name, lite.lite_file) == ("/data/x.db", "docs", True)
    server = parse_location("milvus://db.example:19531/prod")
    assert (server.uri, server.name, server.url) == (
        "http://db.example:19531",
        "prod",
        "milvus://db.example:19531/prod",
    )
    assert server.state_dir == str(tmp_path / "state" / "db.example_19531_prod")
    assert parse_location("milvus+https://h/x").uri == "https://h:19530"
    cfg = IndexConfig(path="milvus://h:1/x")
    assert (cfg.backend, cfg.location, cfg.path) == (
        "milvus",
        "milvus://h:1/x",
        str(tmp_path / "state" / "h_1_x"),
    )
    for bad in (
        "milvus://h:1/bad-name",
        "milvus://user:pw@h:1/x",
        "milvus+https:///x.db",
        "milvus:///dir/",
        "milvus://h:99999/x",
    ):
        with pytest.raises(ConfigError):
            IndexConfig(path=bad)


def test_env_alias_selects_milvus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGROUTE_INDEX", "milvus://h:2/y")
    monkeypatch.setenv("RAGROUTE_INDEX_DIR", "/elsewhere")
    assert IndexConfig().location == "milvus://h:2/y"


def test_ingest_search_and_unchanged(shared: HybridIndex, embedder: Any) -> None:
    assert shared.upsert_documents(corpus_batch()) == ["unchanged"] * len(TINY_CORPUS)
    hits = shared.search("How long do access tokens live?", k=3, access=AccessScope.public())
    assert hits and hits[0].doc_id in {"auth", "auth-old"}
    assert hits[0].ranks["dense"] is not None and hits[0].source_scores["bm25"] > 0  # Lite's sign normalised
    assert shared.keyword_search("docker compose", k=2)[0].doc_id == "deploy-de"
    assert Path(shared.path).is_dir() and shared.location.startswith("milvus:///")
    with pytest.raises(AttributeError, match="no local BM25"):
        shared.bm25  # noqa: B018


@pytest.mark.parametrize(
    "flt",
    [
        {"version": {"$gte": "2.10"}},
        {"version": {"$lt": "2.10"}},
        {"last_updated": {"$gte": "2025-01-01"}},
        {"$or": [{"doc_type": "faq"}, {"language": {"$ne": "en"}}]},
    ],
)
def test_filters_select_what_python_selects(shared: HybridIndex, flt: dict[str, Any]) -> None:
    from ragroute.tools.filters import matches

    expected = {doc_id for doc_id, _, _, meta in TINY_CORPUS if matches(flt, meta)}
    assert expected and set(ids(shared.dense_search("anything", k=50, filters=flt))) == expected
    assert set(ids(shared.search("version access tokens", k=50, filters=flt))) <= expected


def test_acl(shared: HybridIndex) -> None:
    assert "secret" not in ids(shared.search("board acquisition", k=10, access=AccessScope.public()))
    assert "secret" not in ids(shared.search("board acquisition", k=10, access=AccessScope(["board"], 2)))
    assert "secret" in ids(shared.search("board acquisition", k=10, access=AccessScope(["board"], 3)))
    # a filter cannot widen the ACL
    widened = shared.search(
        "board", k=10, filters={"$or": [{"category": "board"}, {"category": {"$ne": "board"}}]}
    )
    assert "secret" in ids(widened)
    assert "secret" not in ids(
        shared.search("board", k=10, filters={"category": "board"}, access=AccessScope.public())
    )
    assert shared.get_chunk("secret::c0", access=AccessScope.public()) is None
    assert shared.get_parent("secret::p0", access=AccessScope.public()) is None
    assert shared.get_parent("secret::p0").text.startswith("The board approved")


def test_soft_delete_restore_purge(index: HybridIndex) -> None:
    v0 = index.version
    assert index.delete_document("secret", soft=True)
    assert index.version != v0
    assert "secret" not in ids(index.search("board acquisition", k=10))
    assert [d["doc_id"] for d in index.deleted_documents()] == ["secret"]
    assert index.document_hash("secret") is None
    assert index.restore_document("secret") and not index.restore_document("secret")
    assert "secret" in ids(index.search("board acquisition", k=10))
    assert index.delete_document("secret", soft=True)
    assert index.purge_deleted(0) == ["secret"]
    assert index.deleted_documents() == [] and not index.restore_document("secret")
    assert index.stats()["hard_deleted"] == 1
    assert not index.delete_document("secret")


def test_update_replaces_old_generation(index: HybridIndex) -> None:
    v0 = index.version
    doc = (
        "auth",
        [Chunk("auth::c0", "auth", "Tokens now live for ninety minutes.")],
        [],
        "h2",
        {"doc_type": "faq"},
    )
    assert index.upsert_documents([doc]) == ["updated"]
    assert index.version > v0
    texts = [h.text for h in index.search("tokens", k=20) if h.doc_id == "auth"]
    assert texts == ["Tokens now live for ninety minutes."]
    assert index.chunk_ids() == index.vector_chunk_ids()
    assert index.upsert_documents([doc]) == ["unchanged"]
    with pytest.raises(InputError, match="belongs to another document"):
        index.upsert_documents([("other", [Chunk("auth::c0", "other", "x")], [], "h", {})])


def test_uncommitted_write_is_invisible_and_reconciled(index: HybridIndex) -> None:
    """A writer killed after inserting its rows but before the registry flip leaves nothing visible."""
    backend = index.backend
    (doc,) = prepare_batch([("ghost", [Chunk("ghost::c0", "ghost", "zebra giraffe savanna")], [], "h", {})])
    vectors = {doc.chunks[0].vector_id: backend.embedder.embed_documents(["zebra giraffe savanna"])[0]}
    tokens = {"ghost::c0": ["zebra", "giraffe", "savanna"]}
    backend.cols.insert("chunks", chunk_rows(doc, R.new_gen(), vectors, tokens))
    # and a stale generation of a committed document (a writer killed before its cleanup)
    (auth,) = prepare_batch([("auth", [Chunk("auth::c0", "auth", "zebra tokens")], [], "h", {})])
    vectors = {auth.chunks[0].vector_id: vectors[doc.chunks[0].vector_id]}
    backend.cols.insert("chunks", chunk_rows(auth, R.new_gen(), vectors, {"auth::c0": ["zebra", "token"]}))
    assert index.keyword_search("zebra", k=5) == []
    assert "ghost" not in ids(index.dense_search("zebra giraffe savanna", k=20))
    assert index.get_chunk("ghost::c0") is None and index.get_chunk("auth::c0").text != "zebra tokens"
    assert len(index.vector_chunk_ids() - index.chunk_ids()) == 2
    assert index.reconcile() == {"removed": 0, "reembedded": 0}  # young: may be a write in progress
    assert backend.reconcile(min_age_s=0)["removed"] == 2
    assert index.vector_chunk_ids() == index.chunk_ids()


def test_two_handles_share_state(index: HybridIndex, lite_url: str, embedder: Any) -> None:
    other = open_index(lite_url, embedder=embedder)  # no directory lock: a second handle opens
    try:
        assert other.uid == index.uid and other.version == index.version
        other.upsert_document("new", [Chunk("new::c0", "new", "Quokkas smile a lot.")], [], content_hash="q")
        assert index.keyword_search("quokkas", k=1)[0].doc_id == "new"
        assert index.version == other.version
    finally:
        other.close()


def test_parents_longer_than_a_varchar(index: HybridIndex) -> None:
    text = "ü" * 40_000  # 80 KB of UTF-8: stored in pieces
    parent = Parent("long::p0", "long", text, "S")
    index.upsert_document(
        "long", [Chunk("long::c0", "long", "short", parent_id="long::p0")], [parent], content_hash="l"
    )
    assert index.get_parent("long::p0").text == text


def test_sentence_vectors_stored(shared: HybridIndex) -> None:
    from ragroute.tools.index.sentences import SENTENCE_MODEL, chunk_sentences, sentence_key

    chunk = shared.get_chunk("auth::c0")
    keys = [sentence_key(SENTENCE_MODEL, s) for s in chunk_sentences(chunk.text, chunk.metadata)]
    got = shared.sentence_vectors(keys)
    assert set(got) == set(keys) and all(abs(float((v * v).sum()) - 1) < 1e-3 for v in got.values())


def test_missing_pymilvus_is_a_config_error(
    lite_url: str, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(ConfigError, match=r"pip install 'ragroute\[milvus\]'"):
        open_index(lite_url, embedder=embedder)


def test_unreachable_server_is_one_line() -> None:
    from ragroute.tools.index.milvus_backend import connect

    with pytest.raises(IndexError_, match="cannot reach Milvus at milvus://127.0.0.1:9/x") as err:
        connect("http://127.0.0.1:9", "milvus://127.0.0.1:9/x")
    assert "\n" not in str(err.value)


def test_cli_unreachable_server_no_traceback(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ragroute.cli", "--index", "milvus://127.0.0.1:9/x", "stats"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"RAGROUTE_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.returncode != 0
    assert "cannot reach Milvus" in out.stderr and "Traceback" not in out.stderr


def test_half_done_lite_rewrite_is_repaired_at_open(lite_url: str, embedder: Any) -> None:
    """A process killed between the renames of a Lite rewrite (hard delete) leaves `<name>__old` only."""
    idx = open_index(lite_url, embedder=embedder)
    idx.upsert_documents(corpus_batch())
    chunks = idx.backend.names["chunks"]
    idx.backend.client.rename_collection(chunks, chunks + "__old")
    idx.close()
    again = open_index(lite_url, embedder=embedder)
    try:
        assert again.keyword_search("docker compose", k=1)[0].doc_id == "deploy-de"
        assert chunks + "__old" not in again.backend.client.list_collections()
        assert again.delete_document("deploy-de")  # a whole rewrite
        assert again.keyword_search("docker compose", k=1) == []
        assert again.get_chunk("auth::c0") is not None
    finally:
        again.close()
