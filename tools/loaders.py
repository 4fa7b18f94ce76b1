"""Load source files into `Document`s: markdown, text, HTML, PDF and BEIR-style corpus.jsonl.

Every loader yields either a `Document` or a `LoadFailure`; one bad file (binary, empty, undecodable,
broken PDF, malformed JSON line) is reported and the rest of the batch still loads.
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ragroute.tools.errors import InputError, RagrouteError
from ragroute.tools.metadata import RESERVED_KEYS, split_front_matter
from ragroute.tools.types import Document


def sample_corpus_dir() -> Path:
    """The bundled sample corpus shipped inside the package."""
    return Path(str(resources.files("ragroute").joinpath("sample_corpus")))


# suffix -> Document.format
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
}
# bytes read to decide whether a file is binary
_SNIFF_BYTES = 8192
# HTML elements whose content is never document text
_HTML_DROP = {"script", "style", "nav", "noscript", "template", "svg", "iframe", "head", "form", "button"}
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_HTML_BLOCKS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "figure",
    "figcaption", "dl", "dt", "dd", "address", "details", "summary", "body", "html", "hr",
}  # fmt: skip
# deeper HTML markup is read as plain text and deeper JSONL metadata is refused: the walkers recurse per level
_MAX_NESTING = 100
# JSONL keys that are structure, not metadata
_JSONL_ID_KEYS = ("_id", "id", "doc_id")
_JSONL_CORE_KEYS = {"_id", "id", "doc_id", "title", "text"}


@dataclass(frozen=True)
class LoadFailure:
    """A source that could not be loaded, with a one-line reason."""

    source: str
    message: str


LoadResult = Document | LoadFailure


class _FileProblem(RagrouteError):
    """Internal: a per-file problem turned into a LoadFailure by the caller."""


def iter_source_files(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Supported files under `path` (itself when a file), recursive, sorted, hidden entries skipped."""
    root = Path(path)
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        raise InputError(f"path not found: {str(root)!r}")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            file = Path(dirpath) / name
            if not name.startswith(".") and file.suffix.lower() in SUPPORTED_SUFFIXES:
                found.append(file)
    # sorted by path components, so the order never depends on the file system
    yield from sorted(found, key=lambda f: f.relative_to(root).parts)


def load_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[LoadResult]:
    """Documents and failures from every file or folder in `paths`, in a deterministic order."""
    for path in paths:
        yield from load_path(path)


def load_path(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> Iterator[LoadResult]:
    """Documents and failures from a file or a folder (recursive); doc ids are paths relative to `root`.

    `root` defaults to the folder itself, or to a single file's parent folder.
    """
    p = Path(path)
    if not p.exists():
        yield LoadFailure(str(p), "path not found")
        return
    base = Path(root) if root is not None else (p if p.is_dir() else p.parent)
    for file in iter_source_files(p):
        yield from load_file(file, root=base)


def load_file(
    path: str | os.PathLike[str],
    *,
    doc_id: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Iterator[LoadResult]:
    """Load one file: one Document (several for .jsonl) or a LoadFailure naming the problem."""
    p = Path(path)
    source = str(p)
    fmt = SUPPORTED_SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        yield LoadFailure(
            source, f"unsupported file type {p.suffix or '(none)'!r}; supported: {sorted(SUPPORTED_SUFFIXES)}"
        )
        return
    if doc_id is None:
        doc_id = _relative_id(p, Path(root) if root is not None else p.parent)
    try:
        if fmt == "jsonl":
            yield from load_jsonl(p)
            return
        if fmt == "pdf":
            yield load_pdf(p, doc_id=doc_id)
            return
        text = read_text(p)
        if fmt == "markdown":
            yield _markdown_document(text, doc_id=doc_id, source=source, stem=p.stem)
        elif fmt == "html":
            title, body = html_to_markdown(text)
            yield _non_empty(
                Document(doc_id=doc_id, text=body, title=title or p.stem, source=source, format="markdown"),
                "HTML page has no visible text",
            )
        else:
            yield _non_empty(
                Document(doc_id=doc_id, text=text.strip(), title=p.stem, source=source, format="text"),
                "file contains only whitespace",
            )
    except (_FileProblem, InputError) as exc:
        yield LoadFailure(source, str(exc))
    except OSError as exc:
        yield LoadFailure(source, f"cannot read file: {exc.strerror or exc}")


def _relative_id(path: Path, root: Path) -> str:
    """Path of `path` relative to `root` in POSIX form (the file name when it lies elsewhere)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def _non_empty(doc: Document, message: str) -> Document:
    if not doc.text.strip():
        raise _FileProblem(message)
    return doc


def _markdown_document(text: str, *, doc_id: str, source: str, stem: str) -> Document:
    """A markdown Document with front matter moved into metadata and the first h1 as default title."""
    front, body = split_front_matter(text)
    body = body.strip()
    if not body:
        raise _FileProblem("markdown file has no content after its front matter" if front else "empty file")
    title = str(front.get("title") or "") or _first_heading(body) or stem
    return Document(doc_id=doc_id, text=body, title=title, source=source, metadata=front, format="markdown")


def _first_heading(markdown: str) -> str:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", markdown, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


# ---------------------------------------------------------------------------------------------- text


def read_text(path: str | os.PathLike[str]) -> str:
    """Text of `path` decoded as UTF-8 (BOM-aware); a clear error for binary, empty or undecodable files."""
    data = Path(path).read_bytes()
    return decode_text(data)


def decode_text(data: bytes) -> str:
    """Decode file bytes to text or raise a per-file problem that says why they are not text."""
    if not data.strip():
        raise _FileProblem("empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return _check_text(data.decode("utf-16"), "UTF-16")
        except UnicodeDecodeError as exc:
            raise _FileProblem(
                f"has a UTF-16 byte-order mark but is not valid UTF-16 ({exc.reason})"
            ) from None
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise _FileProblem("binary file (contains NUL bytes); not a text document")
    try:
        # utf-8-sig also decodes plain UTF-8 and drops a leading BOM
        return _check_text(data.decode("utf-8-sig"), "UTF-8")
    except UnicodeDecodeError as exc:
        utf8_error = f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
    # a legacy 8-bit encoding is accepted only when the result is plainly text
    for codec in ("cp1252", "latin-1"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if _looks_like_text(text):
            return text
    raise _FileProblem(f"{utf8_error} and does not look like Latin-1 text; re-save it as UTF-8")


def _check_text(text: str, encoding: str) -> str:
    if not _looks_like_text(text):
        raise _FileProblem(f"decodes as {encoding} but is mostly control characters; looks binary")
    return text


def _looks_like_text(text: str) -> bool:
    """True when almost no characters are control codes (tabs and newlines excepted)."""
    if not text:
        return False
    sample = text[:_SNIFF_BYTES]
    bad = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    return bad <= max(1, len(sample) // 1000)


# ---------------------------------------------------------------------------------------------- html


def html_to_markdown(html: str) -> tuple[str, str]:
    """(title, markdown) for an HTML page: h1-h6 become `#` headings; script/style/nav are dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    converter = _HtmlConverter()
    converter.walk(soup)
    converter.flush()
    body = "\n\n".join(converter.blocks)
    if not title:
        title = _first_heading(body)
    return title, body


class _HtmlConverter:
    """Walks a parsed HTML tree and collects markdown blocks in reading order."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._inline: list[str] = []

    def flush(self) -> None:
        text = " ".join("".join(self._inline).split())
        if text:
            self.blocks.append(text)
        self._inline = []

    def walk(self, node: Any, depth: int = 0) -> None:
        from bs4 import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

        if depth >= _MAX_NESTING:  # get_text walks the rest of the tree without recursing
            self._inline.append(node.get_text(" "))
            return
        for child in node.children:
            if isinstance(child, (Comment, Doctype, Declaration, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                self._inline.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = (child.name or "").lower()
            if name in _HTML_DROP:
                continue
            if name in _HTML_HEADINGS:
                self.flush()
                text = " ".join(child.get_text(" ").split())
                if text:
                    self.blocks.append("#" * _HTML_HEADINGS[name] + " " + text)
            elif name == "pre":
                self.flush()
                code = child.get_text().strip("\n")
                if code.strip():
                    self.blocks.append(f"```\n{code}\n```")
            elif name == "table":
                self.flush()
                table = _html_table(child)
                if table:
                    self.blocks.append(table)
            elif name in ("ul", "ol"):
                self.flush()
                items = [" ".join(li.get_text(" ").split()) for li in child.find_all("li", recursive=False)]
                marks = [f"{i}." for i in range(1, len(items) + 1)] if name == "ol" else ["-"] * len(items)
                lines = [f"{m} {t}" for m, t in zip(marks, items, strict=True) if t]
                if lines:
                    self.blocks.append("\n".join(lines))
            elif name == "br":
                self._inline.append(" ")
            elif name in _HTML_BLOCKS or name == "li":
                self.flush()
                self.walk(child, depth + 1)
                self.flush()
            else:
                self.walk(child, depth + 1)


def _html_table(table: Any) -> str:
    """A markdown pipe table for an HTML table (first row as header)."""
    rows = []
    for tr in table.find_all("tr"):
        cells = [" ".join(c.get_text(" ").split()).replace("|", "\\|") for c in tr.find_all(["th", "td"])]
        if any(cells):
            rows.append(cells)
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- pdf


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's repair warnings ("EOF marker not found"); a real failure is reported instead."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_pdf(path: str | os.PathLike[str], *, doc_id: str) -> LoadResult:
    """A Document with the PDF's page texts separated by form feeds (the chunker makes one section a page)."""
    from pypdf import PdfReader

    p = Path(path)
    source = str(p)
    data = p.read_bytes()
    if not data.strip():
        return LoadFailure(source, "empty file")
    if not data.lstrip().startswith(b"%PDF-"):
        return LoadFailure(source, "not a PDF file (missing %PDF- header)")
    try:
        with _quiet_pypdf():
            reader = PdfReader(p)
            if reader.is_encrypted:
                return LoadFailure(source, "PDF is encrypted; decrypt it before ingesting")
            pages = [(page.extract_text() or "").strip() for page in reader.pages]
            info = reader.metadata
            pdf_title = str(info.title).strip() if info is not None and info.title else ""
    # pypdf raises many unrelated exception types on damaged files (its own errors, ValueError, KeyError,
    # struct/zlib errors...); every one of them means "this PDF is broken", which is a per-file failure.
    except Exception as exc:  # noqa: BLE001
        return LoadFailure(source, f"cannot parse PDF ({type(exc).__name__}: {exc})")
    if not pages:
        return LoadFailure(source, "PDF has no pages")
    if not any(pages):
        return LoadFailure(source, "PDF has no extractable text (scanned images? OCR is not supported)")
    return Document(
        doc_id=doc_id,
        text="\f".join(pages),
        title=pdf_title or p.stem,
        source=source,
        metadata={"pages": len(pages)},
        format="pdf",
    )


# --------------------------------------------------------------------------------------------- jsonl


def load_jsonl(path: str | os.PathLike[str]) -> Iterator[LoadResult]:
    """One Document per line of a BEIR corpus.jsonl (`_id`, `title`, `text`, extra fields as metadata).

    A malformed line is reported as `path:LINE` and the other lines still load.
    """
    p = Path(path)
    source = str(p)
    try:
        handle = p.open("rb")
    except OSError as exc:
        yield LoadFailure(source, f"cannot read file: {exc.strerror or exc}")
        return
    seen: set[str] = set()
    blank = True
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            blank = False
            where = f"{source}:{lineno}"
            try:
                result = _jsonl_document(raw, source=source)
            except _FileProblem as exc:
                yield LoadFailure(where, str(exc))
                continue
            if result.doc_id in seen:
                yield LoadFailure(where, f"duplicate _id {result.doc_id!r} (an earlier line has it)")
                continue
            seen.add(result.doc_id)
            yield result
    if blank:
        yield LoadFailure(source, "empty file")


def _jsonl_document(raw: bytes, *, source: str) -> Document:
    try:
        line = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _FileProblem(f"not valid UTF-8 (offset {exc.start})") from None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _FileProblem(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _FileProblem(f"JSON nests deeper than {_MAX_NESTING} levels") from None
    if not isinstance(record, dict):
        raise _FileProblem(f"expected a JSON object, got {type(record).__name__}")
    doc_id = next((record[k] for k in _JSONL_ID_KEYS if k in record), None)
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or str(doc_id).strip() == "":
        raise _FileProblem(f"missing or empty '_id' (got {doc_id!r})")
    title = record.get("title") or ""
    text = record.get("text") or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise _FileProblem("'title' and 'text' must be strings")
    if not text.strip() and not title.strip():
        raise _FileProblem(f"document {doc_id!r} has no text and no title")
    # extra fields become metadata; names the chunker owns (section, parent_id...) get an "orig_" prefix
    extra = {
        (f"orig_{k}" if k in RESERVED_KEYS else k): v
        for k, v in record.items()
        if k not in _JSONL_CORE_KEYS and v is not None
    }
    return Document(
        doc_id=str(doc_id),
        text=text.strip() or title.strip(),
        title=title.strip(),
        source=source,
        metadata=_flatten(extra),
        format="jsonl",
    )


def _flatten(values: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Nested dicts become dotted keys (`metadata.url`); empty dicts disappear."""
    if depth >= _MAX_NESTING:
        raise _FileProblem(f"JSON nests deeper than {_MAX_NESTING} levels")
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, prefix=f"{name}.", depth=depth + 1))
        else:
            out[name] = value
    return out
