"""Structure-aware chunking: sections -> paragraphs -> sentences, with parent sections for context.

Not fixed token windows. A document is parsed into sections (markdown headings, PDF pages, or one
section for plain text and JSONL records), each section into blocks (paragraphs, lists, code fences,
tables). Blocks are merged into child chunks up to `child_tokens`, and a new child starts where the
vocabulary shifts between adjacent blocks (a TextTiling-style depth score over lexical cohesion).
Sentences are only split when one sentence alone exceeds the budget. Sections (or runs of small
sections) up to `parent_tokens` become `Parent`s; every child chunk's text is a substring of its parent.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ragroute.tools.analyzer import ENGLISH_STOPWORDS, Analyzer
from ragroute.tools.errors import ConfigError
from ragroute.tools.sentences import sentence_spans, trim_span
from ragroute.tools.tokens import count_tokens
from ragroute.tools.types import Chunk, Document, Parent

DEFAULT_CHILD_TOKENS = 200
DEFAULT_PARENT_TOKENS = 800
# bumped whenever chunk boundaries change, so that re-ingest notices (it is part of the content hash)
CHUNKER_VERSION = "1"
SECTION_SEP = " > "

_FENCE_RE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})")
_ATX_RE = re.compile(r"^\s{0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_SETEXT_RE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_TABLE_LINE_RE = re.compile(r"^\s*\|")
# words that carry no topic on their own, on top of the BM25 analyzer's stopwords
_COHESION_STOPWORDS = frozenset(
    "use used using one two new via per within without however thus therefore".split()
)
_COHESION_ANALYZER = Analyzer(
    stopwords=ENGLISH_STOPWORDS | _COHESION_STOPWORDS, min_len=3
)  # same lowercasing, Unicode word split and light stemming as BM25


@dataclass
class _Block:
    """A structural unit of a section: paragraph, list, code fence, table or heading line."""

    text: str
    kind: str = "text"  # "text" | "code" | "table" | "heading"


@dataclass
class _Section:
    path: list[str]
    blocks: list[_Block] = field(default_factory=list)


@dataclass
class _Span:
    """A unit of a section's text by character offsets (so chunk texts are exact substrings)."""

    start: int
    end: int
    tokens: int
    glue: bool = False  # heading line: always kept with the unit after it


# ------------------------------------------------------------------------------------------ parsing


def parse_sections(doc: Document) -> list[_Section]:
    """The document's sections (heading path + blocks) according to its format."""
    if doc.format == "markdown":
        return _markdown_sections(doc.text)
    if doc.format == "pdf":
        pages = doc.text.split("\f")
        return [
            _Section([f"Page {n}"], _paragraph_blocks(page))
            for n, page in enumerate(pages, start=1)
            if page.strip()
        ]
    # plain text and JSONL records: paragraphs only. A JSONL title names the single section but is not
    # repeated in the text: the index already puts title and section in front of what it embeds.
    path = [doc.title] if doc.format == "jsonl" and doc.title else []
    return [_Section(path, _paragraph_blocks(doc.text))]


def _paragraph_blocks(text: str) -> list[_Block]:
    """Blank-line separated paragraphs, whitespace-trimmed."""
    return [_Block(p.strip()) for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def _markdown_sections(text: str) -> list[_Section]:
    """Split markdown on ATX/setext headings (ignoring `#` inside code fences) into blocks per section."""
    sections: list[_Section] = [_Section([])]
    stack: list[tuple[int, str]] = []
    para: list[str] = []
    lines = text.splitlines()
    i = 0

    def flush() -> None:
        if para:
            block = "\n".join(para).strip("\n")
            kind = "table" if all(_TABLE_LINE_RE.match(ln) for ln in para if ln.strip()) else "text"
            if block.strip():
                sections[-1].blocks.append(_Block(block, kind))
            para.clear()

    def open_section(level: int, title: str, line: str) -> None:
        flush()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        sections.append(_Section([t for _, t in stack], [_Block(line, "heading")]))

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
            sections[-1].blocks.append(_Block("\n".join(code), "code"))
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
    out: list[_Section] = []
    carried: list[_Block] = []
    for section in sections:
        if any(b.kind != "heading" for b in section.blocks):
            section.blocks[:0] = carried
            carried = []
            out.append(section)
        else:
            carried.extend(section.blocks)
    return out


def _split_oversized(text: str, start: int, end: int, budget: int) -> list[tuple[int, int]]:
    """Pieces of one over-budget sentence (or code/table) at line, else word boundaries, each <= budget."""
    piece = text[start:end]
    sep = r"\n" if "\n" in piece.strip() else r"\s+"
    cuts = sorted({m.end() for m in re.finditer(sep, piece)} | {len(piece)})
    out: list[tuple[int, int]] = []
    cur = 0
    while cur < len(piece):
        best = None
        for cut in cuts:
            if cut <= cur:
                continue
            if count_tokens(piece[cur:cut]) > budget:
                break
            best = cut
        if best is None:
            # the next line/word alone is over budget: cut it by characters, then go on
            nxt = next(c for c in cuts if c > cur)
            s, e = trim_span(text, start + cur, start + nxt)
            if sep == r"\n" and e > s:
                out.extend(
                    _split_oversized(text, s, e, budget)
                    if re.search(r"\s", text[s:e])
                    else _token_slices(text, s, e, budget)
                )
            elif e > s:
                out.extend(_token_slices(text, s, e, budget))
            cur = nxt
            continue
        out.append(trim_span(text, start + cur, start + best))
        cur = best
    return [span for span in out if span[1] > span[0]]


def _token_slices(text: str, start: int, end: int, budget: int) -> list[tuple[int, int]]:
    """Cut by characters so that every slice is within budget (for a single giant word or line)."""
    out = []
    cur = start
    while cur < end:
        lo, hi = cur + 1, end
        while lo < hi:  # largest stop with count_tokens(text[cur:stop]) <= budget
            mid = (lo + hi + 1) // 2
            if count_tokens(text[cur:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        out.append((cur, lo))
        cur = lo
    return out


# ------------------------------------------------------------------------------------ cohesion


def _terms(text: str) -> Counter[str]:
    """Content-word counts (stopwords and numbers dropped, lightly stemmed), for lexical cohesion."""
    return Counter(t for t in _COHESION_ANALYZER.tokens(text) if not t.isdigit())


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    return dot / (math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values())))


def topic_boundaries(
    texts: list[str], *, window: int = 2, max_similarity: float = 0.1, min_depth: float = 0.15
) -> set[int]:
    """Indices i where a new topic starts at texts[i] (TextTiling-style depth scores, lexical cohesion).

    The gap before i compares the `window` units before it with the `window` units after it by cosine
    similarity of content-word counts. A gap is a boundary when it is a local minimum, its similarity is
    at most `max_similarity` (the two sides share almost no vocabulary), and its depth -- how far it dips
    below the highest similarity reached climbing away from it on each side -- is at least `min_depth`.
    An edge gap has only one side to climb, so it needs a deeper dip.
    """
    n = len(texts)
    if n < 3:
        return set()
    terms = [_terms(t) for t in texts]
    sims = []
    for i in range(1, n):
        left: Counter[str] = Counter()
        right: Counter[str] = Counter()
        for t in terms[max(0, i - window) : i]:
            left.update(t)
        for t in terms[i : i + window]:
            right.update(t)
        sims.append(_cosine(left, right))
    out = set()
    for g, s in enumerate(sims):
        if s > max_similarity:
            continue
        if (g > 0 and sims[g - 1] < s) or (g + 1 < len(sims) and sims[g + 1] < s):
            continue  # not a local minimum
        lpeak = rpeak = s
        for x in reversed(sims[:g]):
            if x < lpeak:
                break
            lpeak = x
        for x in sims[g + 1 :]:
            if x < rpeak:
                break
            rpeak = x
        if (lpeak - s) + (rpeak - s) >= min_depth:
            out.add(g + 1)
    return out


# ----------------------------------------------------------------------------------------- chunking


def _section_text(section: _Section) -> tuple[str, list[_Span]]:
    """The section rendered as text (blocks joined by blank lines) and its block spans."""
    parts: list[str] = []
    spans: list[_Span] = []
    pos = 0
    for block in section.blocks:
        if parts:
            pos += 2
        spans.append(
            _Span(pos, pos + len(block.text), count_tokens(block.text), glue=block.kind == "heading")
        )
        parts.append(block.text)
        pos += len(block.text)
    return "\n\n".join(parts), spans


def _units(text: str, spans: list[_Span], budget: int) -> list[_Span]:
    """Blocks, with each over-budget block broken into sentences (or lines) and giant sentences cut."""
    out: list[_Span] = []
    for span in spans:
        if span.tokens <= budget:
            out.append(span)
            continue
        block = text[span.start : span.end]
        sentences = [(span.start + s, span.start + e) for s, e in sentence_spans(block, "prose")]
        if len(sentences) <= 1 or block.lstrip().startswith(("```", "~~~", "|")):
            sentences = [(span.start, span.end)]
        for s, e in sentences:
            tokens = count_tokens(text[s:e])
            if tokens <= budget:
                out.append(_Span(s, e, tokens))
            else:
                for ps, pe in _split_oversized(text, s, e, budget):
                    out.append(_Span(ps, pe, count_tokens(text[ps:pe])))
    return out


def _group_units(text: str, units: list[_Span], budget: int, min_topic_tokens: int) -> list[tuple[int, int]]:
    """Merge consecutive units into chunks up to `budget`, starting a new one at topic shifts."""
    # a heading unit sticks to the next unit: merge it into that unit's span before grouping
    merged: list[_Span] = []
    pending: _Span | None = None
    for unit in units:
        if pending is not None:
            combined = count_tokens(text[pending.start : unit.end])
            if combined <= budget:
                unit = _Span(pending.start, unit.end, combined, glue=unit.glue)
            else:
                merged.append(pending)
            pending = None
        if unit.glue:
            pending = unit
        else:
            merged.append(unit)
    if pending is not None:
        merged.append(pending)
    shifts = topic_boundaries([text[u.start : u.end] for u in merged])
    # a shift only counts when the new topic has some substance before the next shift (or the end)
    segment_tokens = {}
    for i in sorted(shifts, reverse=True):
        stop = min([j for j in shifts if j > i], default=len(merged))
        segment_tokens[i] = sum(u.tokens for u in merged[i:stop])
    shifts = {i for i in shifts if segment_tokens[i] >= min_topic_tokens}
    # greedy packing: groups of unit indices; `forced[k]` says group k starts at a topic shift
    groups: list[list[int]] = []
    forced: list[bool] = []
    cur_tokens = 0
    for i, unit in enumerate(merged):
        if groups:
            joined = count_tokens(text[merged[groups[-1][0]].start : unit.end])
            topic = i in shifts and cur_tokens >= min_topic_tokens
            if joined <= budget and not topic:
                groups[-1].append(i)
                cur_tokens = joined
                continue
            forced.append(topic)
        else:
            forced.append(False)
        groups.append([i])
        cur_tokens = unit.tokens
    _rebalance(text, merged, groups, forced, budget, min_topic_tokens)
    return [(merged[g[0]].start, merged[g[-1]].end) for g in groups]


def _rebalance(
    text: str, units: list[_Span], groups: list[list[int]], forced: list[bool], budget: int, small: int
) -> None:
    """Move units from a full chunk into the small chunk after it when only the budget split them."""

    def size(group: list[int]) -> int:
        return count_tokens(text[units[group[0]].start : units[group[-1]].end])

    for k in range(1, len(groups)):
        if forced[k]:
            continue
        prev, last = groups[k - 1], groups[k]
        prev_tokens, last_tokens = size(prev), size(last)
        while last_tokens < small and len(prev) > 1:
            moved_last = [prev[-1], *last]
            new_last, new_prev = size(moved_last), size(prev[:-1])
            if new_last > budget or abs(new_prev - new_last) >= abs(prev_tokens - last_tokens):
                break
            prev.pop()
            last.insert(0, moved_last[0])
            prev_tokens, last_tokens = new_prev, new_last


def _hash8(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:8]


def chunk_document(
    doc: Document,
    *,
    child_tokens: int = DEFAULT_CHILD_TOKENS,
    parent_tokens: int = DEFAULT_PARENT_TOKENS,
    min_topic_tokens: int | None = None,
) -> tuple[list[Chunk], list[Parent]]:
    """Child chunks and parent sections of `doc`; ids are deterministic and change with the content."""
    if child_tokens < 8:
        raise ConfigError(f"child_tokens must be >= 8, got {child_tokens}")
    if parent_tokens < child_tokens:
        raise ConfigError(f"parent_tokens ({parent_tokens}) must be >= child_tokens ({child_tokens})")
    min_topic = child_tokens // 4 if min_topic_tokens is None else min_topic_tokens
    meta_key = json.dumps(doc.metadata, sort_keys=True, default=str)
    # '#' separates chunk id from content digest in the index's vector ids, so it may not appear in ours
    id_base = doc.doc_id.replace("%", "%25").replace("#", "%23")

    # 1. per section: rendered text and child spans within it
    rendered: list[tuple[_Section, str, list[tuple[int, int]], int]] = []
    for section in parse_sections(doc):
        text, spans = _section_text(section)
        if not text.strip():
            continue
        children = _group_units(text, _units(text, spans, child_tokens), child_tokens, min_topic)
        rendered.append((section, text, children, count_tokens(text)))

    # 2. parents: runs of whole small sections under the same top heading, or slices of a big section
    groups: list[list[tuple[_Section, str, list[tuple[int, int]]]]] = []
    parent_of_group: list[tuple[str, str]] = []  # (parent text, section label)
    run: list[tuple[_Section, str, list[tuple[int, int]]]] = []
    run_tokens = 0

    def close_run() -> None:
        nonlocal run, run_tokens
        if run:
            groups.append(run)
            parent_of_group.append(
                ("\n\n".join(t for _, t, _ in run), _common_section([s for s, _, _ in run]))
            )
        run, run_tokens = [], 0

    for section, text, children, tokens in rendered:
        if tokens > parent_tokens:
            close_run()
            for piece in _split_children(text, children, parent_tokens):
                lo, hi = piece[0][0], piece[-1][1]
                # re-base this slice's child spans so the slice is self-contained
                groups.append([(section, text[lo:hi], [(s - lo, e - lo) for s, e in piece])])
                parent_of_group.append((text[lo:hi], SECTION_SEP.join(section.path)))
            continue
        same_top = run and run[0][0].path[:1] == section.path[:1]
        if run and (not same_top or run_tokens + tokens > parent_tokens):
            close_run()
        run.append((section, text, children))
        run_tokens += tokens + (1 if len(run) > 1 else 0)
    close_run()

    # 3. materialize Parents and Chunks
    chunks: list[Chunk] = []
    parents: list[Parent] = []
    for j, (group, (ptext, plabel)) in enumerate(zip(groups, parent_of_group, strict=True)):
        parent_id = f"{id_base}::p{j}::{_hash8(ptext, meta_key)}"
        parents.append(Parent(parent_id=parent_id, doc_id=doc.doc_id, text=ptext, section=plabel))
        for section, text, children in group:
            label = SECTION_SEP.join(section.path)
            for s, e in children:
                ctext = text[s:e]
                if not ctext.strip():
                    continue
                i = len(chunks)
                metadata: dict[str, Any] = dict(doc.metadata)
                metadata.update(
                    doc_id=doc.doc_id,
                    title=doc.title,
                    section=label,
                    chunk_index=i,
                    parent_id=parent_id,
                    source=doc.metadata.get("source") or doc.source,
                )
                if section.path:
                    metadata["section_path"] = list(section.path)
                chunk_id = f"{id_base}::{_hash8(ctext, label, parent_id, meta_key)}::{i}"
                chunks.append(
                    Chunk(
                        chunk_id=chunk_id,
                        doc_id=doc.doc_id,
                        text=ctext,
                        metadata=metadata,
                        parent_id=parent_id,
                    )
                )
    return chunks, parents


def _split_children(
    text: str, children: list[tuple[int, int]], parent_tokens: int
) -> list[list[tuple[int, int]]]:
    """Consecutive runs of child spans whose covering slice fits in `parent_tokens` (at least one each)."""
    pieces: list[list[tuple[int, int]]] = []
    cur: list[tuple[int, int]] = []
    for span in children:
        if cur and count_tokens(text[cur[0][0] : span[1]]) > parent_tokens:
            pieces.append(cur)
            cur = []
        cur.append(span)
    if cur:
        pieces.append(cur)
    return pieces


def _common_section(sections: Iterable[_Section]) -> str:
    """The longest heading path shared by `sections`, joined; the first's path when nothing is shared."""
    paths = [s.path for s in sections]
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if all(p == parts[0] for p in parts):
            common.append(parts[0])
        else:
            break
    return SECTION_SEP.join(common or paths[0])
