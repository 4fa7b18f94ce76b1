"""Prompt for rewriting a follow-up question of a conversation into a standalone question, and the reply's
schema."""

from pydantic import BaseModel, Field

CONDENSE_PROMPT = """A user asks questions about a document collection, one after another.
Rewrite the new question so it can be understood without the conversation: resolve words like "it",
"that", "they", "and what about ..." with what they refer to in the earlier questions. Keep the user's
wording otherwise; add nothing the user did not ask. If the new question already stands on its own,
return it unchanged.

Conversation so far:
{history}

New question: {question}

Reply with JSON only: {{"standalone": "<the standalone question>", "follow_up": true | false}}"""


class CondenseReply(BaseModel):
    """The condense step's reply: the question rewritten to stand alone, and whether it was a follow-up."""

    standalone: str = Field(min_length=1)  # no maxLength: llama.cpp turns a long one into a huge grammar
    follow_up: bool = False
