"""Document structure: sections (heading path + blocks) of markdown, PDF pages, plain text, JSONL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ragroute.tools.types import Document

_FENCE_RE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})")
_ATX_RE = re.compile(r"^\s{0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_SETEXT_RE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_TABLE_LINE_RE = re.compile(r"^\s*\|")


@dataclass
class Block:
    """A structural unit of a section: paragraph, list, code fence, table or heading line."""

    text: str
    kind: str = "text"  # "text" | "code" | "table" | "heading"


@dataclass
class Section:
    path: list[str]
    blocks: list[Block] = field(default_factory=list)


def parse_sections(doc: Document) -> list[Section]:
    """The document's sections (heading path + blocks) according to its format."""
    if doc.format == "markdown":
        return _markdown_sections(doc.text)
    if doc.format == "pdf":
        pages = doc.text.split("\f")
        return [
            Section([f"Page {n}"], _paragraph_blocks(page))
            for n, page in enumerate(pages, start=1)
            if page.strip()
        ]
    # plain text and JSONL records: paragraphs only. A JSONL title names the single section but is not
    # repeated in the text: the index already puts title and section in front of what it embeds.
    path = [doc.title] if doc.format == "jsonl" and doc.title else []
    return [Section(path, _paragraph_blocks(doc.text))]


def _paragraph_blocks(text: str) -> list[Block]:
    """Blank-line separated paragraphs, whitespace-trimmed."""
    return [Block(p.strip()) for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def _markdown_sections(text: str) -> list[Section]:
    """Split markdown on ATX/setext headings (ignoring `#` inside code fences) into blocks per section."""
    sections: list[Section] = [Section([])]
    stack: list[tuple[int, str]] = []
    para: list[str] = []
    lines = text.splitlines()
    i = 0

    def flush() -> None:
        if para:
            block = "\n".join(para).strip("\n")
            kind = "table" if all(_TABLE_LINE_RE.match(ln) for ln in para if ln.strip()) else "text"
            if block.strip():
                sections[-1].blocks.append(Block(block, kind))
            para.clear()

    def open_section(level: int, title: str, line: str) -> None:
        flush()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        sections.append(Section([t for _, t in stack], [Block(line, "heading")]))

    while i < len(lines):
        line = lines[i].rstrip()
        fence = _FENCE_RE.match(line)
        if fence:
            flush()
            marker = fence.group(2)
            code = [line]
            i += 1
            while i < len(lines):
                code.append(lines[i].rstrip())
                if lines[i].strip().startswith(marker[0] * len(marker)) and not lines[i].strip().strip(
                    marker[0]
                ):
                    break
                i += 1
            sections[-1].blocks.append(Block("\n".join(code), "code"))
            i += 1
            continue
        atx = _ATX_RE.match(line)
        if atx and atx.group(2):
            open_section(len(atx.group(1)), atx.group(2).strip(), line.strip())
            i += 1
            continue
        # setext heading: one paragraph line underlined with === or ---
        if (
            len(para) == 1
            and _SETEXT_RE.match(line)
            and not _TABLE_LINE_RE.match(para[0])
            and not para[0].lstrip().startswith(("-", "*", "+", ">"))
        ):
            title = para[0].strip()
            para.clear()
            open_section(1 if line.strip().startswith("=") else 2, title, f"{title}\n{line.strip()}")
            i += 1
            continue
        if not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    # a section that is only a heading ("## Concepts" right before "### Workflows") has no chunk of its
    # own: its heading line moves into the next section, so the parent text still shows the outline
    out: list[Section] = []
    carried: list[Block] = []
    for section in sections:
        if any(b.kind != "heading" for b in section.blocks):
            section.blocks[:0] = carried
            carried = []
            out.append(section)
        else:
            carried.extend(section.blocks)
    return out
