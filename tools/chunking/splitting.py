"""Child chunks of one section: blocks, over-budget blocks cut into sentences (or lines, or token slices),
then packed up to the budget with a new chunk at each topic shift."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragroute.tools.chunking.cohesion import topic_boundaries
from ragroute.tools.chunking.structure import Section
from ragroute.tools.sentences import sentence_spans, trim_span
from ragroute.tools.tokens import count_tokens


@dataclass
class TextSpan:
    """A unit of a section's text by character offsets (so chunk texts are exact substrings)."""

    start: int
    end: int
    tokens: int
    glue: bool = False  # heading line: always kept with the unit after it


def section_text(section: Section) -> tuple[str, list[TextSpan]]:
    """The section rendered as text (blocks joined by blank lines) and its block spans."""
    parts: list[str] = []
    spans: list[TextSpan] = []
    pos = 0
    for block in section.blocks:
        if parts:
            pos += 2
        spans.append(
            TextSpan(pos, pos + len(block.text), count_tokens(block.text), glue=block.kind == "heading")
        )
        parts.append(block.text)
        pos += len(block.text)
    return "\n\n".join(parts), spans


def split_units(text: str, spans: list[TextSpan], budget: int) -> list[TextSpan]:
    """Blocks, with each over-budget block broken into sentences (or lines) and giant sentences cut."""
    out: list[TextSpan] = []
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
                out.append(TextSpan(s, e, tokens))
            else:
                for ps, pe in _split_oversized(text, s, e, budget):
                    out.append(TextSpan(ps, pe, count_tokens(text[ps:pe])))
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


def group_units(
    text: str, units: list[TextSpan], budget: int, min_topic_tokens: int
) -> list[tuple[int, int]]:
    """Merge consecutive units into chunks up to `budget`, starting a new one at topic shifts."""
    # a heading unit sticks to the next unit: merge it into that unit's span before grouping
    merged: list[TextSpan] = []
    pending: TextSpan | None = None
    for unit in units:
        if pending is not None:
            combined = count_tokens(text[pending.start : unit.end])
            if combined <= budget:
                unit = TextSpan(pending.start, unit.end, combined, glue=unit.glue)
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
    text: str, units: list[TextSpan], groups: list[list[int]], forced: list[bool], budget: int, small: int
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
