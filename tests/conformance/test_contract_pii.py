"""Backend contract: PII redaction on ingest. Stored chunks hold placeholders yet stay searchable, the
encrypted mapping restores the originals and is forgotten with the document, and after a hard delete, a
purge or a redacting re-ingest no raw value is left in any file the backend wrote."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ragroute.tools.errors import InputError
from ragroute.tools.ingest import ingest_paths, pii_store_path
from ragroute.tools.pii import KEY_ENV, PiiRedactor, generate_key

from tests.unit.test_pii_on_disk import EMAIL, PHONE, raw_on_disk


@pytest.fixture
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two documents, one with PII in its metadata, a heading and its text (outside the index's folder)."""
    docs = tmp_path_factory.mktemp("docs")
    (docs / "contacts.md").write_text(
        f"---\nauthor: {EMAIL}\n---\n# Billing contacts\n\n"
        f"For billing escalations write to {EMAIL} or call {PHONE}; answers come within four hours.\n"
    )
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds are paid back within five business days.\n")
    return docs


def stored(index: Any) -> str:
    """Everything the index returns about its documents, as one string."""
    parts = [str(index.list_documents())]
    for cid in index.chunk_ids():
        chunk = index.get_chunk(cid)
        parts += [chunk.text, str(chunk.metadata), str(index.get_parent(chunk.parent_id))]
    return "\n".join(parts)


def test_redacted_on_ingest_and_restorable_with_the_key(
    open_backend: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv(KEY_ENV, key)
    index = open_backend(empty=True)
    report = ingest_paths(index, [str(folder)], progress=False, redact_pii=True)
    assert report.added == ["contacts.md", "refunds.md"] and report.pii_reversible
    text = stored(index)
    assert EMAIL not in text and "555 0134" not in text and "<EMAIL_1>" in text
    hits = index.search("how fast are billing escalations answered", k=2)
    assert hits[0].doc_id == "contacts.md" and "<EMAIL_1>" in hits[0].text
    mapping_id = hits[0].metadata["pii_mapping_id"]
    redactor = PiiRedactor(store_path=pii_store_path(index.path), key=key)
    assert EMAIL in redactor.restore(hits[0].text, mapping_id)
    unchanged = ingest_paths(index, [str(folder)], progress=False, redact_pii=True)
    assert unchanged.unchanged == ["contacts.md", "refunds.md"]
    assert index.delete_document("contacts.md")  # hard: the mapping goes too
    with pytest.raises(InputError, match="unknown PII mapping"):
        redactor.restore(hits[0].text, mapping_id)


@pytest.mark.parametrize("how", ["hard", "purge", "redacting re-ingest"])
def test_no_raw_value_left_on_disk(
    open_backend: Any,
    folder: Path,
    stored_under: Callable[[], list[Path]],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    if backend == "milvus-server":
        reason = (
            "Milvus server: deleted rows stay in the collections' wal/*.arrow (compaction is a no-op on a "
            "milvus-lite server and asynchronous on a cluster; the Lite rewrite runs for Lite files only)"
        )
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))

    def raw() -> list[str]:
        return [hit for where in stored_under() for hit in raw_on_disk(str(where))]

    monkeypatch.delenv(KEY_ENV, raising=False)
    index = open_backend(empty=True)
    ingest_paths(index, [str(folder)], progress=False)
    assert raw()  # the check can fail: the plain ingest stored the values
    if how == "hard":
        assert index.delete_document("contacts.md", soft=False)
    elif how == "purge":
        assert index.delete_document("contacts.md", soft=True)
        assert index.purge_deleted(0) == ["contacts.md"]
    else:
        assert "contacts.md" in ingest_paths(index, [str(folder)], progress=False, redact_pii=True).updated
    assert raw() == []
    assert index.search("refunds paid back", k=1)[0].doc_id == "refunds.md"
    index.close()
    assert raw() == []
