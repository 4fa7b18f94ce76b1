"""Doc ids are unique per source: folders that share file names never replace each other's documents, a
later ingest of one folder finds its own ids again, and only an explicit replace_source/--replace lets one
source take over another's id (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ragroute.cli import main
from ragroute.tools.ingest import ingest_documents, ingest_paths
from ragroute.tools.types import Document


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders that both have a README.md (different texts) and one file of their own."""
    p1, p2 = tmp_path / "p1", tmp_path / "p2"
    for folder, topic in ((p1, "refund policy of the alpha shop"), (p2, "shipping rules of the beta store")):
        folder.mkdir()
        (folder / "README.md").write_text(f"# {folder.name} readme\n\nThis folder explains the {topic}.\n")
    (p1 / "alpha.md").write_text("# Alpha\n\nAlpha refunds take five days.\n")
    (p2 / "beta.md").write_text("# Beta\n\nBeta parcels ship on Mondays.\n")
    return p1, p2


def texts_by_source(index: Any) -> dict[str, tuple[str, str]]:
    """source file name (folder/name) -> (doc id, text of its first chunk)."""
    out = {}
    for info in index.list_documents():
        src = Path(info["metadata"]["source"])
        chunk = next(c for c in sorted(index.chunk_ids()) if c.startswith(info["doc_id"] + "::"))
        out[f"{src.parent.name}/{src.name}"] = (info["doc_id"], index.get_chunk(chunk).text)
    return out


def test_two_folders_in_one_run_keep_both_readmes(make_index: Any, folders: tuple[Path, Path]) -> None:
    p1, p2 = folders
    index = make_index(empty=True)
    report = ingest_paths(index, [str(p1), str(p2)], progress=False)
    assert report.ok, report.failed
    assert sorted(report.added) == ["README.md", "alpha.md", "beta.md", "p2/README.md"]
    docs = texts_by_source(index)
    assert docs["p1/README.md"][0] == "README.md" and "alpha shop" in docs["p1/README.md"][1]
    assert docs["p2/README.md"][0] == "p2/README.md" and "beta store" in docs["p2/README.md"][1]
    # the same run again finds the same ids: nothing changes, nothing is duplicated
    again = ingest_paths(index, [str(p1), str(p2)], progress=False)
    assert sorted(again.unchanged) == sorted(report.added) and not again.added and not again.failed


def test_a_later_folder_never_replaces_another_folders_document(
    make_index: Any, folders: tuple[Path, Path]
) -> None:
    p1, p2 = folders
    index = make_index(empty=True)
    assert ingest_paths(index, [str(p1)], progress=False).added == ["README.md", "alpha.md"]
    report = ingest_paths(index, [str(p2)], progress=False)
    assert report.ok and sorted(report.added) == ["beta.md", "p2/README.md"] and not report.updated
    # p2 alone again, even edited: it updates its own namespaced document, p1's stays untouched
    (p2 / "README.md").write_text("# p2 readme\n\nThe beta store now ships on Fridays.\n")
    again = ingest_paths(index, [str(p2)], progress=False, prune=True)
    assert again.updated == ["p2/README.md"] and not again.added and not again.deleted
    docs = texts_by_source(index)
    assert docs["p1/README.md"] == ("README.md", docs["p1/README.md"][1])
    assert "alpha shop" in docs["p1/README.md"][1] and "Fridays" in docs["p2/README.md"][1]
    # p1 itself keeps updating README.md in place (an index built before this scheme keeps its ids)
    assert sorted(ingest_paths(index, [str(p1)], progress=False).unchanged) == ["README.md", "alpha.md"]


def test_replace_source_lets_a_folder_take_the_id(make_index: Any, folders: tuple[Path, Path]) -> None:
    p1, p2 = folders
    index = make_index(empty=True)
    ingest_paths(index, [str(p1)], progress=False)
    report = ingest_paths(index, [str(p2)], progress=False, replace_source=True)
    assert report.updated == ["README.md"] and report.added == ["beta.md"]
    assert "beta store" in texts_by_source(index)["p2/README.md"][1]


def test_single_files_and_the_trash_are_protected_too(make_index: Any, folders: tuple[Path, Path]) -> None:
    p1, p2 = folders
    index = make_index(empty=True)
    ingest_paths(index, [str(p1 / "README.md")], progress=False)
    assert index.delete_document("README.md", soft=True)
    # the soft-deleted README is p1's: p2's single file must not take (and so wipe) its id
    assert ingest_paths(index, [str(p2 / "README.md")], progress=False).added == ["p2/README.md"]
    assert index.restore_document("README.md")
    assert "alpha shop" in texts_by_source(index)["p1/README.md"][1]


def test_api_documents_do_not_replace_a_file(make_index: Any, folders: tuple[Path, Path]) -> None:
    p1, _ = folders
    index = make_index(empty=True)
    ingest_paths(index, [str(p1)], progress=False)
    sent = Document(doc_id="README.md", text="Posted over the API.", source="api:README.md")
    report = ingest_documents(index, [sent], progress=False)
    assert not report.added and not report.updated
    [(where, message)] = report.failed
    assert where == "api:README.md" and "already holds a document from" in message
    assert "replace_source=True" in message and "alpha shop" in texts_by_source(index)["p1/README.md"][1]
    # the same API document again is its own source: an update, as before
    own = Document(doc_id="note", text="First version.", source="api:note")
    assert ingest_documents(index, [own], progress=False).added == ["note"]
    assert ingest_documents(
        index, [Document(doc_id="note", text="Second.", source="api:note")], progress=False
    ).updated == ["note"]
    assert ingest_documents(index, [sent], progress=False, replace_source=True).updated == ["README.md"]


def test_cli_ingest_of_two_folders_loses_nothing(
    tmp_path: Path, folders: tuple[Path, Path], capsys: Any
) -> None:
    p1, p2 = folders
    idx = str(tmp_path / "index")
    assert main(["--index", idx, "ingest", str(p1), str(p2), "--json", "--no-progress"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert sorted(first["added"]) == ["README.md", "alpha.md", "beta.md", "p2/README.md"]
    assert main(["--index", idx, "ingest", str(p2), "--json", "--no-progress"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert sorted(second["unchanged"]) == ["beta.md", "p2/README.md"] and not second["updated"]
    assert main(["--index", idx, "ingest", str(p2), "--replace", "--json", "--no-progress"]) == 0
    third = json.loads(capsys.readouterr().out)
    assert third["updated"] == ["README.md"] and not third["failed"]
