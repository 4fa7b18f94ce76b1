"""Prompt for multi-hop decomposition, and the reply's schema."""

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

MAX_SUBQUESTIONS = 8  # the schema's bound; ctx.max_subquestions keeps fewer

DECOMPOSE_PROMPT = """Split the question into at most {n} simple sub-questions that can each be answered by
one passage. For a comparison, ask about each item separately. For a chain ("the director of the film
that ..."), ask the first hop, then the second hop using the words you expect the first answer to name.

Question: {question}

Reply with JSON only: an object whose "subquestions" field lists the sub-questions as strings."""

Subquestion = Annotated[str, Field(max_length=300)]


class SubquestionsReply(BaseModel):
    """The decompose step's reply: the sub-questions, in order."""

    subquestions: list[Subquestion] = Field(min_length=1, max_length=MAX_SUBQUESTIONS)

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        # a model without structured output may still reply with the bare list earlier prompts asked for
        return {"subquestions": data} if isinstance(data, list) else data
