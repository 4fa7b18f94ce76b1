"""Prompt for query expansion, and the reply's schema."""

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

MAX_VARIANTS = 8  # the schema's bound; ctx.num_variants keeps fewer

EXPAND_PROMPT = """Write {n} different search queries that would find passages answering the question.
Use synonyms and the specific terms a document would use; keep each under 20 words.

Question: {question}

Reply with JSON only: an object whose "queries" field lists {n} strings."""

Query = Annotated[str, Field(max_length=300)]


class VariantsReply(BaseModel):
    """The expand step's reply: the search queries."""

    queries: list[Query] = Field(min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        # a model without structured output may still reply with the bare list earlier prompts asked for
        return {"queries": data} if isinstance(data, list) else data
