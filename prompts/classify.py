"""Prompt for routing a question, and the reply's schema."""

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

CLASSIFY_PROMPT = """Decide how to retrieve evidence for a question.
Routes:
- "simple": one lookup answers it (a fact, a definition, a claim about one thing).
- "expand": vague, short or under-specified; needs rephrasing to find the right text.
- "multihop": needs facts about two or more things (comparisons) or a chain (the X of the Y that ...).

Question: {question}

Reply with JSON only: {{"route": "simple" | "expand" | "multihop", "reason": "<one short sentence>"}}"""


class RouteReply(BaseModel):
    """The classify step's reply: a route and why."""

    route: Literal["simple", "expand", "multihop"]
    reason: str = Field(default="", max_length=200)  # bounded: a grammar-bound model cannot ramble on

    @field_validator("route", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value
