"""The `ragroute` CLI end to end on the bundled sample corpus (real index, offline defaults)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ragroute.cli import main
from ragroute.tools.loaders import sample_corpus_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("cli-index"))
    assert main(["--index", path, "ingest", str(sample_corpus_dir()), "--json"]) == 0
    return path


def test_ingest_reports_every_sample_file_and_skips_unchanged(index_dir, capsys):
    code, out, _ = run(capsys, "--index", index_dir, "ingest", str(sample_corpus_dir()), "--json")
    report = json.loads(out)
    assert code == 0
    assert sorted(report["unchanged"]) == sorted(p.name for p in sample_corpus_dir().iterdir() if p.is_file())
    assert report["added"] == [] and report["failed"] == []


def test_search_json_has_ranks_scores_and_metadata(index_dir, capsys):
    code, out, _ = run(capsys, "--index", index_dir, "search", "maximum token lifetime", "-k", "3", "--json")
    results = json.loads(out)["results"]
    assert code == 0 and len(results) == 3
    top = results[0]
    assert top["doc_id"] == "authentication.md"
    assert {"chunk_id", "doc_id", "title", "section", "text", "score", "ranks", "metadata"} <= set(top)
    assert set(top["ranks"]) == {"dense", "bm25"}
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_search_filter_and_acl(index_dir, capsys):
    flt = json.dumps({"doc_type": "release_notes", "version": {"$gte": "2.10.0"}})
    _, out, _ = run(capsys, "--index", index_dir, "search", "token lifetime", "--filter", flt, "--json")
    assert {r["doc_id"] for r in json.loads(out)["results"]} == {"release-notes-2.10.0.md"}

    query = ("failover", "--json", "-k", "20")
    _, out, _ = run(capsys, "--index", index_dir, "search", *query, "--groups", "eng", "--clearance", "5")
    assert "incident-runbook.md" not in {r["doc_id"] for r in json.loads(out)["results"]}
    _, out, _ = run(capsys, "--index", index_dir, "search", *query, "--groups", "ops", "--clearance", "2")
    assert "incident-runbook.md" in {r["doc_id"] for r in json.loads(out)["results"]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "x", "--filter", "{not json"], "--filter is not valid JSON"),
        (["search", "x", "--filter", "[1]"], "--filter must be a JSON object"),
        (["search", "x", "--filter", '{"version": {"$regex": "2"}}'], "$regex"),
        (["search", "x", "-k", "0"], "-k must be between"),
        (["search", "   "], "query"),
        (["ingest", "/no/such/path"], "no such file or folder"),
        (["ingest", ".", "--meta", "security_level=high"], "security_level"),
    ],
)
def test_user_mistakes_are_one_line_errors(index_dir, capsys, argv, message):
    code, out, err = run(capsys, "--index", index_dir, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_ask_json_carries_the_output_fields(index_dir, capsys):
    question = "How long is run history kept by default?"
    code, out, _ = run(capsys, "--index", index_dir, "ask", question, "--json")
    result = json.loads(out)
    assert code == 0
    assert {"answer", "citations", "route", "k", "faithfulness", "timings", "generator"} <= set(result)
    assert "180 days" in result["answer"]
    assert result["citations"][0]["doc_id"] == "faq.txt"
    assert result["generator"] == "extractive-offline"


def test_delete_and_stats(tmp_path, capsys):
    path = str(tmp_path / "idx")
    doc = tmp_path / "note.md"
    doc.write_text("# Note\n\nThe blue widget ships in March.\n")
    assert run(capsys, "--index", path, "ingest", str(doc), "--json")[0] == 0
    _, out, _ = run(capsys, "--index", path, "stats", "--json")
    assert json.loads(out)["documents"] == 1
    code, out, _ = run(capsys, "--index", path, "delete", "note.md", "missing.md", "--json")
    assert code == 1 and json.loads(out) == {"deleted": ["note.md"], "not_found": ["missing.md"]}
    _, out, _ = run(capsys, "--index", path, "search", "blue widget", "--json")
    assert json.loads(out)["results"] == []


def test_quickstart_answers_with_citations(tmp_path, capsys):
    code, out, _ = run(capsys, "--index", str(tmp_path / "qs"), "quickstart", "--json")
    data = json.loads(out)
    assert code == 0 and not data["ingest"]["failed"]
    assert "90 days" in data["ask"]["answer"]
    assert data["ask"]["citations"] and not data["ask"]["abstained"]
    assert Path(str(tmp_path / "qs")).exists()


# ------------------------------------------------------------------ exit codes, output, scope, --llm


def test_ingest_exits_non_zero_and_counts_the_failed_files(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\n\nThe green widget ships in May.\n")
    (docs / "broken.pdf").write_bytes(b"this is not a PDF")
    code, out, err = run(capsys, "--index", str(tmp_path / "idx"), "ingest", str(docs), "--no-progress")
    assert code == 1
    assert "added 1" in out and "failed 1" in out
    assert "1 file(s) failed" in err and "broken.pdf" in err


def test_stats_prints_a_table_and_index_may_follow_the_subcommand(index_dir, capsys):
    code, out, _ = run(capsys, "stats", "--index", index_dir)
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.splitlines() if line.startswith(("documents", "bm25")))
    assert rows["documents"].strip() == str(len([p for p in sample_corpus_dir().iterdir() if p.is_file()]))
    assert rows["bm25"].startswith("chunks ") and "{" not in out and "'" not in out


def test_search_defaults_to_public_documents_and_says_so(index_dir, capsys):
    query = ("failover", "--json", "-k", "20")
    _, out, err = run(capsys, "--index", index_dir, "search", *query)
    assert "incident-runbook.md" not in {r["doc_id"] for r in json.loads(out)["results"]}
    assert err.strip() == "scope: public documents only (give groups/clearance, or all_access, to read more)"
    _, out, err = run(capsys, "--index", index_dir, "search", *query, "--all-access")
    assert "incident-runbook.md" in {r["doc_id"] for r in json.loads(out)["results"]}
    assert err.strip() == "scope: all documents (all_access)"
    code, _, err = run(capsys, "--index", index_dir, "search", *query, "--all-access", "--groups", "ops")
    assert code == 2 and "--all-access" in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope:model", "unknown provider 'nope'; options: anthropic"),
        ("openai:gpt-4o-mini", "cannot be set up"),  # no OPENAI_API_KEY here
    ],
)
def test_an_unusable_llm_fails_before_the_graph_runs(index_dir, capsys, monkeypatch, spec, message):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run(capsys, "--index", index_dir, "ask", "How long is run history kept?", "--llm", spec)
    assert code == 2 and out == ""
    assert message in err and "degraded" not in err and len(err.strip().splitlines()) == 1
