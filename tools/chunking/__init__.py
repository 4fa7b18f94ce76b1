"""Structure-aware chunking: sections -> paragraphs -> sentences, with parent sections for context.

Not fixed token windows. A document is parsed into sections (markdown headings, PDF pages, or one
section for plain text and JSONL records), each section into blocks (paragraphs, lists, code fences,
tables). Blocks are merged into child chunks up to `child_tokens`, and a new child starts where the
vocabulary shifts between adjacent blocks (a TextTiling-style depth score over lexical cohesion).
Sentences are only split when one sentence alone exceeds the budget. Sections (or runs of small
sections) up to `parent_tokens` become `Parent`s; every child chunk's text is a substring of its parent.
"""

from ragroute.tools.chunking.assembly import (
    CHUNKER_VERSION,
    DEFAULT_CHILD_TOKENS,
    DEFAULT_PARENT_TOKENS,
    SECTION_SEP,
    chunk_document,
)
from ragroute.tools.chunking.cohesion import topic_boundaries
from ragroute.tools.chunking.structure import parse_sections

__all__ = [
    "CHUNKER_VERSION",
    "DEFAULT_CHILD_TOKENS",
    "DEFAULT_PARENT_TOKENS",
    "SECTION_SEP",
    "chunk_document",
    "parse_sections",
    "topic_boundaries",
]
