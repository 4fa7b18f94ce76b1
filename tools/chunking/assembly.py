"""Chunk a document: child chunks per section, grouped under parent sections, with deterministic ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from ragroute.tools.chunking.splitting import group_units, section_text, split_units
from ragroute.tools.chunking.structure import Section, parse_sections
from ragroute.tools.errors import ConfigError
from ragroute.tools.tokens import count_tokens
from ragroute.tools.types import Chunk, Document, Parent

DEFAULT_CHILD_TOKENS = 200
DEFAULT_PARENT_TOKENS = 800
# bumped whenever chunk boundaries change, so that re-ingest notices (it is part of the content hash)
CHUNKER_VERSION = "1"
SECTION_SEP = " > "


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
    rendered: list[tuple[Section, str, list[tuple[int, int]], int]] = []
    for section in parse_sections(doc):
        text, spans = section_text(section)
        if not text.strip():
            continue
        children = group_units(text, split_units(text, spans, child_tokens), child_tokens, min_topic)
        rendered.append((section, text, children, count_tokens(text)))

    # 2. parents: runs of whole small sections under the same top heading, or slices of a big section
    groups: list[list[tuple[Section, str, list[tuple[int, int]]]]] = []
    parent_of_group: list[tuple[str, str]] = []  # (parent text, section label)
    run: list[tuple[Section, str, list[tuple[int, int]]]] = []
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


def _common_section(sections: Iterable[Section]) -> str:
    """The longest heading path shared by `sections`, joined; the first's path when nothing is shared."""
    paths = [s.path for s in sections]
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if all(p == parts[0] for p in parts):
            common.append(parts[0])
        else:
            break
    return SECTION_SEP.join(common or paths[0])
