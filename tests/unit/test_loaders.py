"""Loaders: every supported format, folder walking, and every bad-input case as a per-file failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ragroute.tools.loaders import (
    LoadFailure,
    decode_text,
    html_to_markdown,
    iter_source_files,
    load_file,
    load_jsonl,
    load_path,
    load_paths,
)
from ragroute.tools.types import Document


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one Helvetica text page per entry (lines split on newlines)."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in text.split("\n"):
            esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({esc}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{k} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _docs(results: list[Document | LoadFailure]) -> dict[str, Document]:
    return {r.doc_id: r for r in results if isinstance(r, Document)}


def _failures(results: list[Document | LoadFailure]) -> dict[str, str]:
    return {
        Path(r.source).name if "/" in r.source else r.source: r.message
        for r in results
        if isinstance(r, LoadFailure)
    }


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    (root / "guide.md").write_text(
        "---\ntitle: The Guide\ndoc_type: technical\nversion: 2.10\n---\n# Guide\n\nHello there.\n",
        encoding="utf-8",
    )
    (root / "notes.txt").write_text("First paragraph.\n\nSecond paragraph.\n", encoding="utf-8")
    (root / "sub" / "page.html").write_text(
        "<html><head><title>Ops Page</title><style>p{}</style></head><body>"
        "<nav>Home | About</nav><h1>Ops</h1><p>Restart the <b>scheduler</b>.</p>"
        "<script>alert('x')</script></body></html>",
        encoding="utf-8",
    )
    (root / "sub" / "deeper" / "report.pdf").write_bytes(
        make_pdf(["Quarterly report.\nRevenue grew.", "Page two."])
    )
    (root / ".secret.md").write_text("# hidden\n\ntext", encoding="utf-8")
    (root / ".hidden_dir" / "x.md").write_text("# hidden\n\ntext", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (root / "guide.md.meta.json").write_text("{}", encoding="utf-8")
    return root


def test_folder_walk_is_recursive_sorted_and_skips_hidden_and_unsupported(corpus: Path) -> None:
    files = [p.relative_to(corpus).as_posix() for p in iter_source_files(corpus)]
    assert files == ["guide.md", "notes.txt", "sub/deeper/report.pdf", "sub/page.html"]


def test_load_folder_with_md_txt_html_pdf(corpus: Path) -> None:
    results = list(load_path(corpus))
    assert [r for r in results if isinstance(r, LoadFailure)] == []
    docs = _docs(results)
    assert list(docs) == ["guide.md", "notes.txt", "sub/deeper/report.pdf", "sub/page.html"]

    md = docs["guide.md"]
    assert md.format == "markdown" and md.title == "The Guide"
    assert md.text.startswith("# Guide") and "---" not in md.text
    assert md.metadata == {"title": "The Guide", "doc_type": "technical", "version": "2.10"}

    assert docs["notes.txt"].format == "text" and docs["notes.txt"].title == "notes"

    html = docs["sub/page.html"]
    assert html.title == "Ops Page" and html.format == "markdown"
    assert html.text == "# Ops\n\nRestart the scheduler."
    assert "alert" not in html.text and "Home" not in html.text

    pdf = docs["sub/deeper/report.pdf"]
    assert pdf.format == "pdf" and pdf.metadata["pages"] == 2
    assert pdf.text.split("\f") == ["Quarterly report.\nRevenue grew.", "Page two."]


def test_doc_ids_are_relative_to_the_given_root_and_stable(corpus: Path) -> None:
    once = [r.doc_id for r in load_paths([corpus]) if isinstance(r, Document)]
    again = [r.doc_id for r in load_paths([str(corpus)]) if isinstance(r, Document)]
    assert once == again
    single = list(load_path(corpus / "sub" / "page.html"))
    assert [d.doc_id for d in single] == ["page.html"]
    explicit = list(load_file(corpus / "notes.txt", doc_id="kb/notes"))
    assert explicit[0].doc_id == "kb/notes"


def test_markdown_title_falls_back_to_first_h1_then_file_name(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("intro\n\n# Real Title\n\nbody", encoding="utf-8")
    (tmp_path / "b.md").write_text("no headings here", encoding="utf-8")
    docs = _docs(list(load_path(tmp_path)))
    assert docs["a.md"].title == "Real Title"
    assert docs["b.md"].title == "b"


def test_html_keeps_heading_levels_code_tables_and_lists() -> None:
    title, text = html_to_markdown(
        "<body><h2>Setup</h2><p>Install it:</p><pre>pip install x\n  --upgrade</pre>"
        "<h3>Limits</h3><table><tr><th>name</th><th>max</th></tr><tr><td>runs</td><td>10</td></tr></table>"
        "<ul><li>one</li><li>two <i>items</i></li></ul><noscript>enable js</noscript></body>"
    )
    assert title == ""  # no <title> and no h1
    blocks = text.split("\n\n")
    assert blocks == [
        "## Setup",
        "Install it:",
        "```\npip install x\n  --upgrade\n```",
        "### Limits",
        "| name | max |\n|---|---|\n| runs | 10 |",
        "- one\n- two items",
    ]


def test_missing_path_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    results = list(load_path(tmp_path / "nope"))
    assert len(results) == 1 and isinstance(results[0], LoadFailure)
    assert "not found" in results[0].message


def test_explicit_unsupported_file_names_the_supported_types(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n", encoding="utf-8")
    (failure,) = list(load_file(path))
    assert isinstance(failure, LoadFailure)
    assert "'.csv'" in failure.message and ".md" in failure.message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"  \n\n\t\n", "empty file"),
        ("binary.txt", b"abc\x00\x01\x02def" * 10, "binary file"),
        ("undecodable.txt", bytes(range(0x80, 0xA0)) * 4, "not valid UTF-8"),
        ("only_front_matter.md", b"---\ntitle: x\n---\n\n", "no content after its front matter"),
        ("bad_front_matter.md", b"---\ntitle: [unclosed\n---\nbody", "invalid YAML in front matter"),
        ("empty.html", b"<html><script>x()</script></html>", "no visible text"),
        ("empty.pdf", b"", "empty file"),
        ("fake.pdf", b"this is not a pdf at all", "not a PDF"),
        ("broken.pdf", make_pdf(["Hello"])[:150], "cannot parse PDF"),
    ],
)
def test_bad_files_become_failures_with_clear_messages(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    results = list(load_file(path))
    assert len(results) == 1
    assert isinstance(results[0], LoadFailure), results[0]
    assert results[0].source == str(path)
    assert expected in results[0].message


def test_pdf_without_text_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(["", ""]))
    (failure,) = list(load_file(path))
    assert isinstance(failure, LoadFailure) and "no extractable text" in failure.message


def test_one_bad_file_does_not_stop_the_folder(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("good one", encoding="utf-8")
    (tmp_path / "b.pdf").write_bytes(b"%PDF-1.4 garbage")
    (tmp_path / "c.txt").write_bytes(b"\x00\x00binary")
    (tmp_path / "d.md").write_text("# also good\n\ntext", encoding="utf-8")
    results = list(load_path(tmp_path))
    assert list(_docs(results)) == ["a.txt", "d.md"]
    assert sorted(_failures(results)) == ["b.pdf", "c.txt"]


def test_decoding_utf8_bom_utf16_and_plain_latin1() -> None:
    assert decode_text("\ufeffcafé".encode()) == "café"
    assert decode_text("naïve text".encode("utf-16")) == "naïve text"
    # cp1252/latin-1 text with no control characters is accepted rather than rejected
    assert decode_text("café au lait – “quoted”".encode("cp1252")) == "café au lait – “quoted”"


def _write_jsonl(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_jsonl_loads_good_lines_and_reports_each_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    _write_jsonl(
        path,
        [
            json.dumps(
                {
                    "_id": "d1",
                    "title": "First",
                    "text": "Alpha text.",
                    "metadata": {"url": "u1", "year": 2020},
                    "section": "intro",
                }
            ),
            "{not json",
            "",
            json.dumps({"title": "no id", "text": "x"}),
            json.dumps(["a", "list"]),
            json.dumps({"_id": "d2", "title": "", "text": ""}),
            json.dumps({"_id": "d1", "title": "dup", "text": "again"}),
            json.dumps({"_id": 7, "title": "Only title", "text": ""}),
            json.dumps({"_id": "d3", "text": 5}),
        ],
    )
    results = list(load_jsonl(path))
    docs = _docs(results)
    assert list(docs) == ["d1", "7"]
    assert docs["d1"].title == "First" and docs["d1"].text == "Alpha text."
    assert docs["d1"].metadata == {"metadata.url": "u1", "metadata.year": 2020, "orig_section": "intro"}
    assert docs["d1"].format == "jsonl" and docs["d1"].source == str(path)
    assert docs["7"].text == "Only title"
    failures = {r.source.rsplit(":", 1)[1]: r.message for r in results if isinstance(r, LoadFailure)}
    assert set(failures) == {"2", "4", "5", "6", "7", "9"}
    assert "invalid JSON" in failures["2"]
    assert "missing or empty '_id'" in failures["4"]
    assert "expected a JSON object" in failures["5"]
    assert "no text and no title" in failures["6"]
    assert "duplicate _id 'd1'" in failures["7"]
    assert "must be strings" in failures["9"]


def test_empty_jsonl_is_one_failure(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    assert list(load_jsonl(path)) == [LoadFailure(str(path), "empty file")]


def test_real_beir_corpus_lines_load() -> None:
    path = Path("/work/shared/data/scifact_dev/corpus.jsonl")
    if not path.exists():
        pytest.skip("shared BEIR data not present")
    results = list(load_jsonl(path))
    assert all(isinstance(r, Document) for r in results)
    assert len(results) == sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
