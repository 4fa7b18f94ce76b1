"""condense: turn a follow-up question of a conversation thread into a standalone question.

Runs only on a thread with earlier turns (the graph goes START -> condense -> classify when the checkpointed
state holds `history`). It writes the standalone question to `question`, which every later node reads,
and keeps the words as asked in `asked`.

With an LLM configured the model rewrites the question (JSON output), falling back to the offline rules
on any failure. Offline, a question is a follow-up when it
- starts with a connective or a "what about" phrase ("and ...", "but ...", "what about ...", "how about
  ...", "as for ...", "same for ..."),
- or refers back with a pronoun ("it", "that", "they", "them", "the same", ...) and names at most
  `FEW_TERMS` content words of its own,
- or is a fragment: no question word or verb up front and at most `FRAGMENT_WORDS` words ("version 2.9?").
A follow-up is combined with the previous standalone question: a fragment that repeats a word of it
followed by a new value replaces that value ("version 2.9.1" in "... in version 2.10.0?"); otherwise the
previous question's content words that the new one lacks are carried over in parentheses.
"""

from __future__ import annotations

import re
import time

from langgraph.runtime import Runtime
from ragroute.context import Context, context_of
from ragroute.prompts.condense import CONDENSE_PROMPT, CondenseReply
from ragroute.runtime.steps import degrade, llm_json, note
from ragroute.state import RAGState
from ragroute.tools.entities import QUESTION_WORDS
from ragroute.tools.extractive import content_terms
from ragroute.tools.pii import redact_query

FEW_TERMS = 3
FRAGMENT_WORDS = 5
PROMPT_TURNS = 3  # earlier turns shown to the LLM
ANSWER_CHARS = 300  # of each earlier answer shown to the LLM

_LEAD = re.compile(r"^\s*(?:(?:and|but|also|so|then|or|plus|now|ok|okay|well)\b[\s,]*)+", re.I)
_ABOUT = re.compile(
    r"^\s*(?:(?:what|how)\s+about|what\s+of|as\s+for|(?:and\s+)?(?:the\s+)?same\s+(?:for|with|in|about))\b[\s,]*",
    re.I,
)
_ANAPHORA = re.compile(
    r"\b(?:it|its|itself|this|that|these|those|they|them|their|theirs|he|she|him|her|his)\b",
    re.I,
)
_VERBS = frozenset(
    {"is", "are", "was", "were", "do", "does", "did", "can", "could", "should", "will", "would"}
)
_PRONOUNS = frozenset("it its itself this that these those they them their theirs he she him her his".split())
_TOKEN = re.compile(r"\S+")
_NUMBER = re.compile(r"v?\d+(?:[.,]\d+)*", re.I)  # a version, a count, a year


def previous_question(history: list[dict]) -> str:
    """The standalone form of the thread's last user question ('' without one)."""
    for msg in reversed(history):
        if msg.get("role") == "user":
            return str(msg.get("standalone") or msg.get("content") or "")
    return ""


def _own_terms(text: str) -> set[str]:
    return content_terms(text) - _PRONOUNS


def _is_fragment(text: str) -> bool:
    words = text.split()
    first = words[0].lower() if words else ""
    return (
        bool(words) and len(words) <= FRAGMENT_WORDS and first not in QUESTION_WORDS and first not in _VERBS
    )


def follow_up_reason(question: str) -> str:
    """Why `question` reads as a follow-up of an earlier one ('' when it stands on its own)."""
    if _LEAD.match(question):
        return "starts with a connective"
    if _ABOUT.match(question):
        return "asks 'what about ...'"
    if _ANAPHORA.search(question) and len(_own_terms(question)) <= FEW_TERMS:
        return "refers back with a pronoun"
    if _is_fragment(question):
        return "is a fragment"
    return ""


def _strip_lead(question: str) -> str:
    rest = _ABOUT.sub("", _LEAD.sub("", question), count=1).strip()
    return rest or question.strip()


def _substitute(fragment: str, previous: str) -> str | None:
    """`previous` with the value after a shared word replaced by the fragment's ('version 2.9.1'), or
    with its last number replaced when the fragment is just a number ('2.9.1')."""
    frag = _TOKEN.findall(fragment.rstrip(" ?.!"))
    prev = _TOKEN.findall(previous)
    plain = [t.lower().strip(".,;:?!()") for t in prev]
    if len(frag) == 1 and _NUMBER.fullmatch(frag[0]):
        at = [i for i, t in enumerate(plain) if _NUMBER.fullmatch(t)]
        if at:
            i = at[-1]
            return " ".join([*prev[:i], prev[i].replace(plain[i], frag[0]), *prev[i + 1 :]])
    for a, word in enumerate(frag[:-1]):
        key = word.lower().strip(".,;:?!()")
        if key not in content_terms(word) or key not in plain:
            continue
        i = plain.index(key)
        n = len(frag) - a
        if i + n > len(prev):
            return None
        tail = re.search(r"[?.!,;:)]*$", prev[i + n - 1])
        new = [*prev[:i], *frag[a:-1], frag[-1] + (tail.group(0) if tail else ""), *prev[i + n :]]
        return " ".join(new)
    return None


def combine(question: str, previous: str) -> str:
    """The offline standalone form of follow-up `question` after `previous` (see the module docstring)."""
    rest = _strip_lead(question)
    if _is_fragment(rest) and not _ANAPHORA.search(rest):
        swapped = _substitute(rest, previous)
        if swapped:
            return swapped
    own = content_terms(rest)
    carried: list[str] = []
    for word in _TOKEN.findall(previous):
        bare = word.strip(".,;:?!()\"'")
        terms = content_terms(bare)
        if terms and not terms & own and bare.lower() not in QUESTION_WORDS and bare not in carried:
            carried.append(bare)
    body = rest.rstrip(" ?.!")
    body = body[:1].upper() + body[1:]
    return f"{body} ({' '.join(carried)})?" if carried else f"{body}?"


def _history_text(history: list[dict]) -> str:
    lines = []
    for msg in history[-2 * PROMPT_TURNS :]:
        if msg.get("role") == "user":
            lines.append(f"User: {msg.get('standalone') or msg.get('content', '')}")
        else:
            lines.append(f"Assistant: {str(msg.get('content', ''))[:ANSWER_CHARS]}")
    return "\n".join(lines)


async def _llm_condense(
    ctx: Context, question: str, history: list[dict]
) -> tuple[str, str, dict[str, float]]:
    reply, usage = await llm_json(
        ctx, CONDENSE_PROMPT.format(history=_history_text(history), question=question), CondenseReply
    )
    standalone = reply.standalone.strip()
    if not standalone:
        raise ValueError("LLM returned no standalone question")
    return standalone, "llm" + (" (follow-up)" if reply.follow_up else ""), usage


async def condense(state: RAGState, runtime: Runtime[Context]) -> dict:
    """Rewrite a follow-up into a standalone `question` (the words as asked stay in `asked`)."""
    ctx = context_of(runtime)
    started = time.perf_counter()
    asked = (state.get("question") or "").strip()
    if ctx.redact_query_pii:  # as classify does: server runs arrive with the raw question
        asked = redact_query(asked)
    history = state.get("history") or []
    previous = previous_question(history)
    standalone, reason = asked, ""
    usage: dict[str, float] = {}
    degradations: list[str] = []
    if asked and previous and ctx.llm:
        try:
            standalone, reason, usage = await _llm_condense(ctx, asked, history)
        except Exception as exc:  # bad JSON or a failed model call: recorded, offline rules used
            degradations = [degrade(ctx, "condense", exc) + "; used offline follow-up rules"]
    if asked and previous and not reason:
        reason = follow_up_reason(asked)
        standalone = combine(asked, previous) if reason else asked
    ms = round((time.perf_counter() - started) * 1000, 3)
    trace_note = note("condense", asked=asked, standalone=standalone, reason=reason or "stands on its own")
    # classify starts every run's trace, timings, usage and degradations afresh; it carries these over
    carried = {
        "trace": [trace_note],
        "timings": {"condense": ms},
        "usage": usage,
        "degradations": degradations,
    }
    return {"question": standalone, "asked": asked, "condensed": carried, **carried}
