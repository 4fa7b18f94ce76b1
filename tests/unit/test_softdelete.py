"""Soft delete, restore and purge: a soft-deleted document is gone from every read path at once, comes back
whole within the grace period, is forgotten by purge (PII mapping included); Chroma, SQLite and BM25 agree
throughout; stats report versions, deletions and the last update; the CLI drives all of it."""

from __future__ import annotations

import json
import time
import types
from pathlib import Path
from typing import Any

import pytest
from ragroute.api import aask
from ragroute.cli import main
from ragroute.runtime import caching, providers
from ragroute.tools.types import AccessScope

from tests.conftest import corpus_batch

Q = "How long do refresh tokens last?"


def consistent(index: Any) -> set[str]:
    """The chunk ids every store holds (asserting they agree)."""
    sqlite_ids = index.chunk_ids()
    assert index.vector_chunk_ids() == sqlite_ids
    assert index.bm25.ids() == sqlite_ids
    return sqlite_ids


def later(days: float) -> Any:
    """A stand-in for ragroute.tools.index.hybrid_index's `time` module, `days` in the future."""
    return types.SimpleNamespace(
        time=lambda: time.time() + days * 86400,
        monotonic=time.monotonic,
        sleep=time.sleep,
        perf_counter=time.perf_counter,
    )


def every_read(index: Any, doc_id: str) -> list[str]:
    """Doc ids seen for `doc_id` through each read path."""
    seen = []
    for hits in (
        index.search(Q, k=20),
        index.search(Q, k=20, filters={"doc_type": "technical"}),
        index.search(Q, k=20, access=AccessScope(groups=["eng"], clearance=1)),
        index.dense_search(Q, k=20),
        index.keyword_search(Q, k=20),
    ):
        seen += [h.doc_id for h in hits if h.doc_id == doc_id]
    seen += [doc_id for d in index.list_documents() if d["doc_id"] == doc_id]
    seen += [doc_id] if index.get_chunk(f"{doc_id}::c1") else []
    seen += [doc_id] if index.get_parent(f"{doc_id}::p0") else []
    return seen


def test_soft_delete_hides_everywhere_and_restore_brings_it_back(make_index: Any) -> None:
    index = make_index()
    before = consistent(index)
    texts = {cid: index.get_chunk(cid).text for cid in before if cid.startswith("auth::")}
    assert every_read(index, "auth")
    version = index.version
    assert index.delete_document("auth", soft=True)
    assert index.version == version + 1 and every_read(index, "auth") == []
    assert consistent(index) == before - set(texts)
    trash = index.deleted_documents()
    assert [d["doc_id"] for d in trash] == ["auth"] and trash[0]["n_chunks"] == 2
    assert not index.delete_document("auth", soft=True)  # already in the trash: nothing to do, kept
    assert index.deleted_documents()
    assert index.restore_document("auth") and not index.restore_document("auth")
    assert consistent(index) == before and index.deleted_documents() == []
    assert {cid: index.get_chunk(cid).text for cid in texts} == texts
    assert index.get_chunk("auth::c0").metadata["version"] == "2.10.0"
    assert "auth" in {h.doc_id for h in index.search(Q, k=5)}


def test_purge_respects_the_grace_period(make_index: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragroute.tools.index.hybrid_index as index_mod
    from ragroute.tools.pii import mapping_id_for

    index = make_index()
    pii_file = Path(index.path) / "pii" / f"{mapping_id_for('auth')}.pii"
    pii_file.parent.mkdir()
    pii_file.write_bytes(b"encrypted mapping")
    index.delete_document("auth", soft=True)
    index.delete_document("cats", soft=True)
    assert index.purge_deleted() == [] and pii_file.exists()  # inside the 30-day grace period
    monkeypatch.setattr(index_mod, "time", later(31))
    assert index.purge_deleted() == ["auth", "cats"] and not pii_file.exists()
    monkeypatch.undo()
    assert index.deleted_documents() == [] and not index.restore_document("auth")
    stats = index.stats()
    assert stats["soft_deleted"] == 0 and stats["hard_deleted"] == 2
    ids = consistent(index)
    index.close()
    reopened = make_index(empty=True, path=index.path)
    assert reopened.reconcile() == {"removed": 0, "reembedded": 0} and consistent(reopened) == ids


def test_hard_delete_also_forgets_the_trash(make_index: Any) -> None:
    index = make_index()
    index.delete_document("auth", soft=True)
    assert index.delete_document("auth")  # hard: the soft-deleted copy is purged
    assert index.deleted_documents() == [] and not index.restore_document("auth")
    assert not index.delete_document("auth")


def test_reingest_revives_a_soft_deleted_document(make_index: Any) -> None:
    index = make_index()
    index.delete_document("auth", soft=True)
    batch = [item for item in corpus_batch() if item[0] == "auth"]
    assert index.upsert_documents(batch) == ["added"]
    assert index.deleted_documents() == [] and not index.restore_document("auth")
    assert every_read(index, "auth")


def test_bad_purge_age_is_a_clear_error(make_index: Any) -> None:
    from ragroute.tools.errors import InputError

    with pytest.raises(InputError, match="older_than_days"):
        make_index(empty=True).purge_deleted(-1)


async def test_graph_and_caches_never_serve_a_soft_deleted_document(make_index: Any) -> None:
    caching.set_cache(None)
    index = make_index()
    bound = providers.Providers(index=index)
    first = await aask(Q, providers=bound)
    assert "auth" in {c["doc_id"] for c in first["citations"]}
    index.delete_document("auth", soft=True)
    after = await aask(Q, providers=bound)
    assert after["cache"]["response"] == "miss"
    assert not any(cid.startswith("auth::") for cid in after["retrieved"] + after["contexts"])


def test_stats_versions_deletions_last_update_and_query_cache(make_index: Any) -> None:
    releases = [
        ("r1", "Orbit 1.0 Notes", "Old notes.", {"doc_type": "release_notes", "version": "1.0"}),
        ("r2", "Orbit 1.1 Notes", "New notes.", {"doc_type": "release_notes", "version": "1.1"}),
        ("x", "Plain", "No version here.", {}),
    ]
    index = make_index(releases)
    stats = index.stats()
    assert stats["versions"] == {"versioned_documents": 2, "families": 1, "families_with_several_versions": 1}
    assert stats["soft_deleted"] == 0 and stats["hard_deleted"] == 0 and stats["last_update"]
    index.delete_document("r1", soft=True)
    stats = index.stats()
    assert stats["soft_deleted"] == 1 and stats["oldest_soft_delete"]
    assert stats["versions"]["families_with_several_versions"] == 0
    index.search("release notes", k=2)
    index.search("release notes", k=2)
    assert index.stats()["query_embedding_cache"]["hits"] >= 1


def test_uid_survives_reopen_and_differs_between_indexes(make_index: Any) -> None:
    a = make_index(empty=True)
    uid, path = a.uid, a.path
    a.close()
    assert make_index(empty=True, path=path).uid == uid != make_index(empty=True).uid


def run(capsys: Any, *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in argv else out


def test_cli_delete_restore_purge_stats(tmp_path: Path, capsys: Any) -> None:
    path = str(tmp_path / "idx")
    doc = tmp_path / "note.md"
    doc.write_text("# Note\n\nThe blue widget ships in March.\n")
    assert run(capsys, "--index", path, "ingest", str(doc), "--json")[0] == 0
    assert run(capsys, "--index", path, "delete", "note.md", "--json") == (
        0,
        {"deleted": ["note.md"], "not_found": []},
    )
    assert run(capsys, "--index", path, "search", "blue widget", "--json")[1]["results"] == []
    assert run(capsys, "--index", path, "stats", "--json")[1]["soft_deleted"] == 1
    assert run(capsys, "--index", path, "restore", "note.md", "--json")[1]["restored"] == ["note.md"]
    assert run(capsys, "--index", path, "search", "blue widget", "--json")[1]["results"]
    run(capsys, "--index", path, "delete", "note.md")
    assert run(capsys, "--index", path, "purge", "--json")[1] == {"purged": [], "still_soft_deleted": 1}
    assert run(capsys, "--index", path, "purge", "--older-than", "0", "--json")[1]["purged"] == ["note.md"]
    code, out = run(capsys, "--index", path, "restore", "note.md", "--json")
    assert code == 1 and out["not_found"] == ["note.md"]
    assert run(capsys, "--index", path, "ingest", str(doc), "--json")[0] == 0
    assert run(capsys, "--index", path, "delete", "--hard", "note.md", "--json")[1]["deleted"] == ["note.md"]
    stats = run(capsys, "--index", path, "stats", "--json")[1]
    assert stats["documents"] == 0 and stats["soft_deleted"] == 0 and stats["hard_deleted"] == 2
    assert main(["--index", path, "purge", "--older-than", "-1"]) == 2


async def test_server_soft_delete_and_stats(make_index: Any) -> None:
    import httpx
    from ragroute.server.app import create_app

    index = make_index()
    keys = {
        "w-key-000000001": {"user": "svc", "write": True, "unrestricted": True},
        "r-key-000000002": {"user": "rita", "groups": ["eng"], "clearance": 1},
    }
    app = create_app(index.path, keys, index=index, tracing=False)
    headers = {"X-API-Key": "w-key-000000001"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.delete("/documents/cats", headers=headers)  # soft unless ?hard=true
        assert r.status_code == 200 and r.json() == {"deleted": "cats", "soft": True}
        r = await client.get("/stats", headers=headers)
        body = r.json()
        assert r.status_code == 200 and body["index"]["soft_deleted"] == 1
        assert set(body["cache"]) == {"embeddings", "retrieval", "responses"}
        assert (await client.get("/stats")).status_code == 401
        r = await client.post("/documents/cats/restore", headers=headers)
        assert r.status_code == 200 and r.json() == {"restored": "cats"}
        assert index.document_metadata("cats") is not None
        r = await client.delete("/documents/cats", params={"hard": "true"}, headers=headers)
        assert r.json() == {"deleted": "cats", "soft": False} and index.deleted_documents() == []
        r = await client.post("/documents/cats/restore", headers=headers)
        assert r.status_code == 404 and r.json() == {"detail": "no soft-deleted document with doc_id 'cats'"}
        # a restricted key sees only its own counts: no totals, paths, versions or cache levels
        r = await client.get("/stats", headers={"X-API-Key": "r-key-000000002"})
        assert set(r.json()) == {"index"}
        assert set(r.json()["index"]) == {"documents", "chunks", "soft_deleted", "embedding"}


@pytest.mark.parametrize(
    "params,hard",
    [({}, False), ({"hard": "true"}, True), ({"soft": "false"}, True), ({"soft": "true"}, False)],
)
async def test_http_delete_is_soft_unless_asked(make_index: Any, params: dict, hard: bool) -> None:
    import httpx
    from ragroute.server.app import create_app

    index = make_index()
    keys = {"w-key-000000001": {"user": "svc", "write": True, "unrestricted": True}}
    app = create_app(index.path, keys, index=index, tracing=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.delete("/documents/cats", params=params, headers={"X-API-Key": "w-key-000000001"})
        assert r.status_code == 200 and r.json() == {"deleted": "cats", "soft": not hard}
        both = {"hard": "true", "soft": "true"}
        r = await client.delete("/documents/auth", params=both, headers={"X-API-Key": "w-key-000000001"})
        assert r.status_code == 422 and "contradict" in r.json()["detail"]
    assert [d["doc_id"] for d in index.deleted_documents()] == ([] if hard else ["cats"])
    assert index.document_metadata("auth") is not None
