"""LLM-as-judge answer correctness, used only when an LLM is configured (offline runs skip it)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ragroute.runtime import providers
from ragroute.tools.errors import ProviderError

JUDGE_PROMPT = """You grade answers to questions against reference answers.

Question: {question}
Reference answer(s):
{references}
Candidate answer: {answer}

Is the candidate answer correct, i.e. does it state what a reference answer states (extra correct detail
is fine; a refusal, a different fact or a contradiction is not)? Reply with exactly one word: CORRECT or
INCORRECT."""

_VERDICT = re.compile(r"\b(INCORRECT|CORRECT)\b", re.IGNORECASE)


def parse_verdict(text: str) -> float | None:
    """1.0 for CORRECT, 0.0 for INCORRECT (the first verdict word wins), None when neither appears."""
    match = _VERDICT.search(text or "")
    if not match:
        return None
    return 0.0 if match.group(1).upper() == "INCORRECT" else 1.0


def judge_answer(model: Any, question: str, references: Sequence[str], answer: str) -> float | None:
    """Ask a LangChain chat model whether `answer` matches a reference; None when it gives no verdict."""
    prompt = JUDGE_PROMPT.format(
        question=question, references="\n".join(f"- {r}" for r in references), answer=answer or "(no answer)"
    )
    try:
        reply = model.invoke(prompt)
    except Exception as exc:  # any SDK/transport failure of the judge is a provider failure
        raise ProviderError("judge", f"{type(exc).__name__}: {exc}") from exc
    content = getattr(reply, "content", reply)
    return parse_verdict(content if isinstance(content, str) else str(content))


def judge_model(spec: str) -> Any:
    """The chat model for a judge spec ("provider:model"), through the graph's provider factory."""
    return providers.chat_model(spec)
