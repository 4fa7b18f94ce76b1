"""Backend contract: writes. Upserts by content hash (added / updated / unchanged), delete, soft delete,
restore and purge seen by every read path, a version that bumps on every change and only then, stats,
state that survives a reopen, and a second handle that sees the first one's writes."""

from __future__ import annotations

import time
import types
from typing import Any

import pytest
from ragroute.tools.types import AccessScope, Chunk, Parent

from tests.conftest import TINY_CORPUS, corpus_batch

Q = "How long do refresh tokens last?"
ALL_DOCS = {d for d, *_ in TINY_CORPUS}
ALL_CHUNKS = {c.chunk_id for _, chunks, *_ in corpus_batch() for c in chunks}


def consistent(index: Any) -> set[str]:
    """The live chunk ids, after checking that the vectors and the document registry agree with them."""
    ids = index.chunk_ids()
    assert index.vector_chunk_ids() == ids
    per_doc: dict[str, int] = {}
    for cid in ids:
        per_doc[index.get_chunk(cid).doc_id] = per_doc.get(index.get_chunk(cid).doc_id, 0) + 1
    assert per_doc == {d["doc_id"]: d["n_chunks"] for d in index.list_documents()}
    return ids


def every_read(index: Any, doc_id: str) -> list[str]:
    """Where `doc_id` is seen: each search path, the listing, chunk and parent lookups."""
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
    seen += [doc_id] if index.get_chunk(f"{doc_id}::c0") else []
    seen += [doc_id] if index.get_parent(f"{doc_id}::p0") else []
    return seen


class Versions:
    """Checks that the index version moved forward (a change) or stayed put (no change) since last time.

    The contract is an increasing number, not a +1 counter: a shared backend may use a timestamp."""

    def __init__(self, index: Any) -> None:
        self.index, self.last = index, index.version

    def changed(self) -> bool:
        now = self.index.version
        assert isinstance(now, int) and now > self.last, (self.last, now)
        self.last = now
        return True

    def same(self) -> bool:
        assert self.index.version == self.last
        return True


def one(doc_id: str, text: str, chash: str, **meta: Any) -> tuple[Any, ...]:
    """An upsert item: one parent and one chunk."""
    return (
        doc_id,
        [Chunk(f"{doc_id}::c0", doc_id, text, {"title": doc_id}, f"{doc_id}::p0")],
        [Parent(f"{doc_id}::p0", doc_id, text)],
        chash,
        meta,
    )


def test_upsert_statuses_hashes_and_versions(open_backend: Any) -> None:
    index = open_backend(empty=True)
    v = Versions(index)
    assert index.upsert_documents(corpus_batch()) == ["added"] * len(TINY_CORPUS)
    assert v.changed() and consistent(index) == ALL_CHUNKS
    assert index.upsert_documents(corpus_batch()) == ["unchanged"] * len(TINY_CORPUS)
    assert v.same()  # nothing changed: same version
    assert index.document_hash("cats") == corpus_batch()[5][3] and index.document_hash("nope") is None
    status = index.upsert_documents([one("cats", "The office cat now sleeps on the printer.", "h2")])
    assert status == ["updated"] and v.changed() and index.document_hash("cats") == "h2"
    assert "printer" in index.get_chunk("cats::c0").text
    assert index.keyword_search("printer", k=1)[0].chunk_id == "cats::c0"
    assert index.document_metadata("cats") == {}  # the update's metadata replaced the old
    # an update with fewer chunks leaves none of the old ones behind
    assert index.upsert_documents([one("auth", "Tokens last five minutes.", "h3", doc_type="technical")]) == [
        "updated"
    ]
    assert index.get_chunk("auth::c1") is None and v.changed()
    assert consistent(index) == ALL_CHUNKS - {"auth::c1"}
    stats = index.stats()
    assert stats["documents"] == len(TINY_CORPUS) and stats["chunks"] == len(ALL_CHUNKS) - 1
    assert stats["vectors"] == stats["chunks"] and stats["version"] == index.version


def test_hard_delete(open_backend: Any) -> None:
    index = open_backend()
    v = Versions(index)
    assert index.delete_document("cats") is True and v.changed()
    assert index.delete_document("cats") is False and v.same()
    assert every_read(index, "cats") == [] and index.deleted_documents() == []
    assert all(h.doc_id != "cats" for h in index.search("office cat tuna", k=20))
    assert consistent(index) == ALL_CHUNKS - {"cats::c0"}
    assert index.stats()["hard_deleted"] == 1


def test_soft_delete_restore_and_purge(open_backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragroute.tools.index.hybrid_index as index_mod

    index = open_backend()
    texts = {cid: index.get_chunk(cid).text for cid in ("auth::c0", "auth::c1")}
    assert every_read(index, "auth")
    v = Versions(index)
    assert index.delete_document("auth", soft=True) and v.changed()
    assert every_read(index, "auth") == [] and consistent(index) == ALL_CHUNKS - set(texts)
    trash = index.deleted_documents()
    assert [d["doc_id"] for d in trash] == ["auth"] and trash[0]["n_chunks"] == 2
    assert trash[0]["metadata"]["version"] == "2.10.0" and trash[0]["deleted_at"]
    assert not index.delete_document("auth", soft=True) and v.same()  # already trashed
    stats = index.stats()
    assert stats["soft_deleted"] == 1 and stats["documents"] == len(TINY_CORPUS) - 1
    assert index.restore_document("auth") and v.changed()
    assert not index.restore_document("auth") and v.same()
    assert {cid: index.get_chunk(cid).text for cid in texts} == texts
    assert consistent(index) == ALL_CHUNKS and "auth" in {h.doc_id for h in index.search(Q, k=5)}
    # purge: kept inside the grace period, forgotten after it
    index.delete_document("auth", soft=True)
    index.delete_document("cats", soft=True)
    v = Versions(index)
    assert index.purge_deleted() == [] and v.same()
    later = types.SimpleNamespace(time=lambda: time.time() + 31 * 86400)
    monkeypatch.setattr(index_mod, "time", later)
    assert sorted(index.purge_deleted()) == ["auth", "cats"]
    monkeypatch.undo()
    # (a purge changes no searchable content, so the version may stay: caches hold no trashed document)
    assert index.deleted_documents() == [] and not index.restore_document("auth")
    assert index.stats()["soft_deleted"] == 0 and index.stats()["hard_deleted"] == 2
    assert consistent(index) == ALL_CHUNKS - {"auth::c0", "auth::c1", "cats::c0"}


def test_hard_delete_and_reingest_of_a_trashed_document(open_backend: Any) -> None:
    index = open_backend()
    index.delete_document("auth", soft=True)
    assert index.upsert_documents([b for b in corpus_batch() if b[0] == "auth"]) == ["added"]
    assert index.deleted_documents() == [] and every_read(index, "auth")
    index.delete_document("cats", soft=True)
    assert index.delete_document("cats") and index.deleted_documents() == []  # hard: forgets the trash
    assert not index.delete_document("cats") and not index.restore_document("cats")


def test_everything_survives_a_reopen(open_backend: Any) -> None:
    first = open_backend(name="persist")
    first.delete_document("cats", soft=True)
    before = [(h.chunk_id, h.score) for h in first.search("tokens expire", k=5)]
    version, uid = first.version, first.uid
    first.close()
    again = open_backend(empty=True, name="persist")
    assert again.version == version and again.uid == uid
    after = [(h.chunk_id, h.score) for h in again.search("tokens expire", k=5)]
    assert [c for c, _ in after] == [c for c, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before])
    assert [d["doc_id"] for d in again.deleted_documents()] == ["cats"]
    assert again.restore_document("cats") and consistent(again) == ALL_CHUNKS
    assert open_backend(empty=True).uid != uid


def test_a_second_handle_sees_the_first_ones_writes(open_backend: Any) -> None:
    """Two handles on one index (two replicas, or two callers in a process): versions, contents and the
    identity the query caches key on agree."""
    from ragroute.runtime.caching import index_identity

    writer = open_backend(name="shared")
    reader = open_backend(empty=True, name="shared", state="elsewhere")  # as on another machine
    assert reader.version == writer.version and reader.uid == writer.uid
    cached_as = index_identity(reader)
    assert cached_as == index_identity(writer)
    assert reader.search("office cat", k=1)[0].doc_id == "cats"
    seen = Versions(reader)
    writer.upsert_documents([one("cats", "The office dog guards the zebra crossing.", "dog")])
    assert seen.changed() and reader.version == writer.version
    assert index_identity(reader) == index_identity(writer) != cached_as  # the reader's cache entries expire
    assert reader.search("zebra crossing dog", k=1)[0].text.startswith("The office dog")
    assert "dog" in reader.get_chunk("cats::c0").text
    writer.delete_document("rrf", soft=True)
    assert seen.changed() and reader.version == writer.version and every_read(reader, "rrf") == []
    assert [d["doc_id"] for d in reader.deleted_documents()] == ["rrf"]
    reader.restore_document("rrf")  # and the other way round
    assert writer.version == reader.version and every_read(writer, "rrf")
    assert consistent(reader) == consistent(writer) == ALL_CHUNKS


def test_listing_and_bad_documents(open_backend: Any) -> None:
    from ragroute.tools.errors import InputError

    index = open_backend()
    docs = {d["doc_id"]: d for d in index.list_documents()}
    assert set(docs) == ALL_DOCS and docs["rrf"]["n_chunks"] == 2 and docs["rrf"]["updated_at"]
    assert docs["rrf"]["metadata"]["category"] == "search" and docs["rrf"]["content_hash"]
    v = Versions(index)
    with pytest.raises(InputError, match="repeated"):
        index.upsert_document("d", [Chunk("x", "d", "a"), Chunk("x", "d", "b")], [], content_hash="h")
    with pytest.raises(InputError, match="two documents"):
        index.upsert_documents(
            [("d1", [Chunk("x", "d1", "a")], [], "h1"), ("d2", [Chunk("x", "d2", "b")], [], "h2")]
        )
    assert v.same() and index.document_hash("d") is None
