"""Ingestion pipeline: added/updated/unchanged, per-file failures, metadata precedence, deletes.

Most tests use an in-memory fake that implements the index contract; the last group runs against the
real HybridIndex (MiniLM + Chroma + BM25) through the `make_index` fixture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.ingest import IngestReport, content_hash, delete_documents, ingest_documents, ingest_paths
from ragroute.tools.loaders import LoadFailure
from ragroute.tools.types import Chunk, Document, Parent


class FakeIndex:
    """The slice of HybridIndex that ingestion uses, kept in dicts."""

    def __init__(self, *, batched: bool = True, reject: set[str] | None = None) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.batch_calls: list[int] = []
        self.reject = reject or set()
        if not batched:
            self.upsert_documents = None  # type: ignore[assignment]

    def document_hash(self, doc_id: str) -> str | None:
        doc = self.docs.get(doc_id)
        return doc["hash"] if doc else None

    def upsert_document(
        self,
        doc_id: str,
        chunks: list[Chunk],
        parents: list[Parent],
        *,
        content_hash: str,
        doc_metadata: dict,
    ) -> str:
        if doc_id in self.reject:
            raise InputError(f"document {doc_id!r} rejected by the index")
        status = "updated" if doc_id in self.docs else "added"
        self.docs[doc_id] = {"chunks": chunks, "parents": parents, "hash": content_hash, "meta": doc_metadata}
        return status

    def upsert_documents(self, batch: list[tuple[Any, ...]]) -> list[str]:  # type: ignore[no-redef]
        if any(item[0] in self.reject for item in batch):
            raise InputError("batch rejected")
        self.batch_calls.append(len(batch))
        return [self.upsert_document(d, c, p, content_hash=h, doc_metadata=m) for d, c, p, h, m in batch]

    def delete_document(self, doc_id: str) -> bool:
        return self.docs.pop(doc_id, None) is not None

    def list_documents(self) -> list[dict[str, Any]]:
        return [{"doc_id": d, "metadata": v["meta"]} for d, v in sorted(self.docs.items())]

    def chunk_ids(self) -> set[str]:
        return {c.chunk_id for d in self.docs.values() for c in d["chunks"]}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "auth.md").write_text(
        "---\ndoc_type: technical\nversion: 2.10.0\ncategory: security\n---\n"
        "# Auth\n\n## Tokens\n\nAccess tokens expire after 15 minutes.\n",
        encoding="utf-8",
    )
    (root / "faq.txt").write_text("How do I reset my password?\n\nUse the reset link.\n", encoding="utf-8")
    (root / "ops.html").write_text("<h1>Ops</h1><p>Restart the scheduler daily.</p>", encoding="utf-8")
    return root


def test_ingest_folder_adds_every_document(folder: Path) -> None:
    index = FakeIndex()
    report = ingest_paths(index, [folder], progress=False)
    assert report.failed == []
    assert report.added == ["auth.md", "faq.txt", "ops.html"]
    assert report.chunks_written == sum(len(d["chunks"]) for d in index.docs.values()) > 0
    assert index.batch_calls == [3]
    auth = index.docs["auth.md"]
    assert auth["meta"]["doc_type"] == "technical" and auth["meta"]["source"] == str(folder / "auth.md")
    assert auth["chunks"][0].metadata["section"] == "Auth > Tokens"
    assert auth["chunks"][0].metadata["title"] == "Auth"
    assert report.seconds >= 0


def test_unchanged_documents_are_skipped_and_changed_ones_replaced(folder: Path) -> None:
    index = FakeIndex()
    ingest_paths(index, [folder], progress=False)
    old_ids = {c.chunk_id for c in index.docs["faq.txt"]["chunks"]}

    again = ingest_paths(index, [folder], progress=False)
    assert again.unchanged == ["auth.md", "faq.txt", "ops.html"]
    assert again.added == again.updated == [] and again.chunks_written == 0

    (folder / "faq.txt").write_text("How do I reset my password?\n\nAsk the admin team.\n", encoding="utf-8")
    changed = ingest_paths(index, [folder], progress=False)
    assert changed.updated == ["faq.txt"] and changed.unchanged == ["auth.md", "ops.html"]
    new_ids = {c.chunk_id for c in index.docs["faq.txt"]["chunks"]}
    assert not new_ids & old_ids
    assert "Ask the admin team." in index.docs["faq.txt"]["chunks"][0].text


def test_metadata_change_alone_triggers_an_update(folder: Path) -> None:
    index = FakeIndex()
    ingest_paths(index, [folder], progress=False)
    report = ingest_paths(index, [folder], meta={"security_level": 1}, progress=False)
    assert sorted(report.updated) == ["auth.md", "faq.txt", "ops.html"]
    assert all(d["meta"]["security_level"] == 1 for d in index.docs.values())


def test_chunker_settings_are_part_of_the_hash() -> None:
    doc = Document("d", "text", title="t")
    assert content_hash(doc, child_tokens=200, parent_tokens=800) != content_hash(
        doc, child_tokens=100, parent_tokens=800
    )


def test_metadata_precedence_cli_over_sidecar_over_front_matter(folder: Path) -> None:
    (folder / "auth.md.meta.json").write_text(
        json.dumps({"category": "iam", "version": "2.11.0", "access_groups": "eng"}), encoding="utf-8"
    )
    index = FakeIndex()
    report = ingest_paths(index, [folder], meta={"version": "3.0"}, progress=False)
    assert report.failed == []
    meta = index.docs["auth.md"]["meta"]
    assert meta["doc_type"] == "technical"  # front matter
    assert meta["category"] == "iam" and meta["access_groups"] == ["eng"]  # sidecar over front matter
    assert meta["version"] == "3.0"  # CLI over both
    chunk_meta = index.docs["auth.md"]["chunks"][0].metadata
    assert chunk_meta["access_groups"] == ["eng"] and chunk_meta["version"] == "3.0"


def test_front_matter_title_overrides_heading(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: Real Title\n---\n# Heading\n\nBody.", encoding="utf-8")
    index = FakeIndex()
    ingest_paths(index, [tmp_path], progress=False)
    chunk = index.docs["a.md"]["chunks"][0]
    assert chunk.metadata["title"] == "Real Title" and "title" not in index.docs["a.md"]["meta"]


def test_bad_files_fail_individually_and_the_batch_continues(folder: Path) -> None:
    (folder / "bad_meta.md").write_text("---\nsecurity_level: top\n---\n# X\n\nbody", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 20)
    (folder / "empty.md").write_text("", encoding="utf-8")
    (folder / "bad_side.txt").write_text("fine text", encoding="utf-8")
    (folder / "bad_side.txt.meta.json").write_text("{oops", encoding="utf-8")
    index = FakeIndex()
    report = ingest_paths(index, [folder], progress=False)
    assert report.added == ["auth.md", "faq.txt", "ops.html"]
    failed = {Path(source).name: message for source, message in report.failed}
    assert set(failed) == {"bad_meta.md", "broken.pdf", "binary.txt", "empty.md", "bad_side.txt"}
    assert "security_level='top'" in failed["bad_meta.md"] and "integer >= 0" in failed["bad_meta.md"]
    assert "cannot parse PDF" in failed["broken.pdf"]
    assert "binary" in failed["binary.txt"]
    assert "empty file" in failed["empty.md"]
    assert "invalid JSON in sidecar" in failed["bad_side.txt"]
    assert json.loads(json.dumps(report.to_dict()))["counts"] == {
        "added": 3,
        "updated": 0,
        "unchanged": 0,
        "failed": 5,
        "deleted": 0,
    }


def test_index_rejection_fails_only_that_document(folder: Path) -> None:
    index = FakeIndex(reject={"faq.txt"})
    report = ingest_paths(index, [folder], progress=False)
    assert report.added == ["auth.md", "ops.html"]
    assert report.failed == [(str(folder / "faq.txt"), "document 'faq.txt' rejected by the index")]


def test_works_without_a_batched_upsert(folder: Path) -> None:
    index = FakeIndex(batched=False)
    report = ingest_paths(index, [folder], progress=False, batch_size=2)
    assert report.added == ["auth.md", "faq.txt", "ops.html"] and index.batch_calls == []


def test_batches_respect_batch_size(folder: Path) -> None:
    index = FakeIndex()
    ingest_paths(index, [folder], progress=False, batch_size=2)
    assert index.batch_calls == [2]  # the final single-document batch goes through upsert_document


def test_jsonl_corpus_and_duplicate_ids_across_files(tmp_path: Path) -> None:
    lines = [
        {"_id": "a", "title": "Alpha", "text": "Alpha is first."},
        {"_id": "b", "title": "Beta", "text": "Beta is second."},
    ]
    (tmp_path / "one.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines) + "\n{bad\n", encoding="utf-8"
    )
    (tmp_path / "two.jsonl").write_text(json.dumps({"_id": "a", "text": "again"}) + "\n", encoding="utf-8")
    index = FakeIndex()
    report = ingest_paths(index, [tmp_path], progress=False)
    assert report.added == ["a", "b"]
    assert index.docs["a"]["chunks"][0].metadata["section"] == "Alpha"
    failed = dict(report.failed)
    assert "invalid JSON" in failed[f"{tmp_path / 'one.jsonl'}:3"]
    assert "duplicate doc_id 'a'" in failed[f"{tmp_path / 'two.jsonl'}#a"]


def test_ingest_documents_accepts_documents_and_failures() -> None:
    index = FakeIndex()
    docs = [
        Document("x", "Some text about x.", title="X", source="", metadata={"doc_type": "FAQ"}),
        LoadFailure("elsewhere.txt", "empty file"),
    ]
    report = ingest_documents(index, docs, meta={"language": "EN"}, progress=False)
    assert report.added == ["x"] and report.failed == [("elsewhere.txt", "empty file")]
    assert index.docs["x"]["meta"] == {"doc_type": "faq", "language": "en"}


def test_progress_bar_is_off_when_not_a_tty(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ingest_paths(FakeIndex(), [folder], progress=True)
    assert "ingest" not in capsys.readouterr().err


def test_prune_deletes_documents_whose_file_is_gone(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("Elsewhere.", encoding="utf-8")
    index = FakeIndex()
    ingest_paths(index, [folder, other], progress=False)
    (folder / "faq.txt").unlink()
    (folder / "ops.html").write_bytes(b"\x00\x01binary now")  # fails to load: its old version stays
    assert ingest_paths(index, [folder], progress=False).deleted == []  # prune is opt-in
    report = ingest_paths(index, [folder], progress=False, prune=True)
    assert report.deleted == ["faq.txt"]
    assert sorted(index.docs) == ["auth.md", "keep.txt", "ops.html"]
    assert report.to_dict()["counts"]["deleted"] == 1


def test_prune_needs_list_documents(folder: Path) -> None:
    index = FakeIndex()
    index.list_documents = None  # type: ignore[assignment,method-assign]
    with pytest.raises(InputError, match="list_documents"):
        ingest_paths(index, [folder], progress=False, prune=True)


def test_delete_documents() -> None:
    index = FakeIndex()
    ingest_documents(index, [Document("x", "text")], progress=False)
    assert delete_documents(index, ["x", "nope"]) == {"deleted": ["x"], "not_found": ["nope"]}
    assert index.docs == {}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_size": 0}, ConfigError),
        ({"child_tokens": 2}, ConfigError),
        ({"child_tokens": 300, "parent_tokens": 100}, ConfigError),
        ({"meta": {"security_level": "x"}}, InputError),
    ],
)
def test_bad_settings_raise_before_anything_is_written(folder: Path, kwargs: dict, error: type) -> None:
    index = FakeIndex()
    with pytest.raises(error):
        ingest_paths(index, [folder], progress=False, **kwargs)
    assert index.docs == {}


def test_no_paths_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no paths"):
        ingest_paths(FakeIndex(), [], progress=False)


def test_missing_path_is_reported_not_raised(tmp_path: Path) -> None:
    report = ingest_paths(FakeIndex(), [tmp_path / "missing"], progress=False)
    assert report.failed == [(str(tmp_path / "missing"), "path not found")]


def test_report_to_dict_shape() -> None:
    report = IngestReport(added=["a"], failed=[("s", "m")], chunks_written=2, seconds=0.12345)
    data = report.to_dict()
    assert data["failed"] == [{"source": "s", "message": "m"}]
    assert data["seconds"] == 0.123 and data["chunks_written"] == 2 and not report.ok


# ------------------------------------------------------------------------------- real HybridIndex


@pytest.fixture
def real_index(make_index: Any) -> Any:
    pytest.importorskip("ragroute.tools.index")
    return make_index(empty=True)


def test_real_index_reingest_replaces_chunks(real_index: Any, folder: Path) -> None:
    report = ingest_paths(real_index, [folder], progress=False)
    assert report.added == ["auth.md", "faq.txt", "ops.html"] and report.failed == []
    old = {h.chunk_id for h in real_index.search("reset password link", k=10)}
    assert any(cid.startswith("faq.txt::") for cid in old)

    (folder / "faq.txt").write_text("How do I reset my password?\n\nAsk the admin team.\n", encoding="utf-8")
    changed = ingest_paths(real_index, [folder], progress=False)
    assert changed.updated == ["faq.txt"] and changed.unchanged == ["auth.md", "ops.html"]
    hits = real_index.search("reset password admin team", k=10)
    faq_ids = {h.chunk_id for h in hits if h.doc_id == "faq.txt"}
    assert faq_ids and not faq_ids & old
    assert all(real_index.get_chunk(cid) is None for cid in old if cid.startswith("faq.txt::"))
    assert any("admin team" in h.text for h in hits)
    # the parent of a hit contains the hit's text
    top = next(h for h in hits if h.doc_id == "faq.txt")
    parent = real_index.get_parent(top.parent_id)
    assert parent is not None and top.text in parent.text


def test_real_index_unchanged_files_are_skipped(real_index: Any, folder: Path) -> None:
    ingest_paths(real_index, [folder], progress=False)
    version = real_index.version
    again = ingest_paths(real_index, [folder], progress=False)
    assert again.unchanged == ["auth.md", "faq.txt", "ops.html"] and again.chunks_written == 0
    assert real_index.version == version


def test_real_index_delete_removes_everywhere(real_index: Any, folder: Path) -> None:
    ingest_paths(real_index, [folder], progress=False)
    ids = {h.chunk_id for h in real_index.search("scheduler restart", k=10) if h.doc_id == "ops.html"}
    assert ids
    assert delete_documents(real_index, ["ops.html"]) == {"deleted": ["ops.html"], "not_found": []}
    assert all(h.doc_id != "ops.html" for h in real_index.search("scheduler restart", k=10))
    assert all(h.doc_id != "ops.html" for h in real_index.keyword_search("scheduler restart", k=10))
    assert all(h.doc_id != "ops.html" for h in real_index.dense_search("scheduler restart", k=10))
    assert all(real_index.get_chunk(cid) is None for cid in ids)
    assert real_index.document_hash("ops.html") is None


def test_real_index_prune_removes_deleted_files(real_index: Any, folder: Path) -> None:
    ingest_paths(real_index, [folder], progress=False)
    (folder / "ops.html").unlink()
    report = ingest_paths(real_index, [folder], progress=False, prune=True)
    assert report.deleted == ["ops.html"] and report.unchanged == ["auth.md", "faq.txt"]
    assert [d["doc_id"] for d in real_index.list_documents()] == ["auth.md", "faq.txt"]
    assert all(h.doc_id != "ops.html" for h in real_index.search("restart the scheduler", k=10))


def test_real_index_filters_on_ingested_metadata(real_index: Any, folder: Path) -> None:
    ingest_paths(real_index, [folder], meta={"language": "en"}, progress=False)
    hits = real_index.search("tokens expire", k=10, filters={"doc_type": "technical"})
    assert hits and {h.doc_id for h in hits} == {"auth.md"}
    assert hits[0].metadata["section"] == "Auth > Tokens" and hits[0].metadata["language"] == "en"


def test_expected_documents_counts_files_and_jsonl_records(folder: Path) -> None:
    from ragroute.tools.ingest import _expected_documents

    (folder / "c.jsonl").write_text(
        '{"_id": "1", "text": "a"}\n\n{"_id": "2", "text": "b"}\n', encoding="utf-8"
    )
    assert _expected_documents([str(folder), str(folder / "missing")]) == 3 + 2
