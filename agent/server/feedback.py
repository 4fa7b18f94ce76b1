"""Feedback routes: POST /feedback rates an answer the caller was given (thumbs up or down, optionally the
correct answer and/or the correct source document, a comment); GET /feedback/{answer_id} reads it back.

A caller rates and reads only its own answers (the answer's recorded caller is its key's user): another
caller's answer id gets the very same 404 as an id that never existed. A correct source must be a
document the caller can read, and a hidden one is refused in the same words as a missing one. Ratings
are kept in `<index>/feedback.sqlite` (ragroute.runtime.feedback) and, when Langfuse is configured,
sent as a `user_feedback` score on the answer's trace.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from ragroute.runtime import feedback, tracing
from ragroute.server.guard import identity_of
from ragroute.server.state import IndexHolder

MISSING = "no answer with this id was given to this API key"


class FeedbackBody(BaseModel):
    """A caller's rating of one answer it was given."""

    model_config = ConfigDict(extra="forbid")
    answer_id: str = Field(max_length=64, description="the answer's `answer_id`")
    rating: Literal["up", "down"]
    correct_answer: str | None = Field(None, max_length=feedback.MAX_ANSWER_CHARS)
    correct_source: str | None = Field(None, max_length=feedback.MAX_DOC_ID_CHARS, description="a doc id")
    comment: str | None = Field(None, max_length=feedback.MAX_COMMENT_CHARS)


def add_feedback_routes(app: FastAPI, holder: IndexHolder) -> None:
    """POST /feedback and GET /feedback/{answer_id}."""

    def caller(request: Request) -> tuple[Any, str]:
        ident = identity_of(request)
        return ident, feedback.server_caller(ident.user)  # as policy.server_configurable records it

    @app.post("/feedback", tags=["feedback"])
    async def give_feedback(body: FeedbackBody, request: Request) -> dict[str, Any]:
        """Rate an answer this key was given (a second rating replaces the first)."""
        ident, who = caller(request)
        rating = feedback.Rating.checked(
            body.rating, body.correct_answer, body.correct_source, body.comment
        )  # InputError (lone surrogates): 422

        def give() -> dict[str, Any]:
            index = holder.get()
            folder = holder.path

            def can_read(doc_id: str) -> bool:
                return bool(index.can_read_document(doc_id, ident.scope()))

            return feedback.give(folder, body.answer_id, who, rating, can_read)

        try:
            out = await asyncio.to_thread(give)
        except feedback.AnswerNotFound:
            raise HTTPException(404, MISSING) from None
        scored = await asyncio.to_thread(tracing.score_feedback, out)
        return {**feedback.shown(out), "scored": scored}

    @app.get("/feedback/{answer_id}", tags=["feedback"])
    async def read_feedback(answer_id: str, request: Request) -> dict[str, Any]:
        """An answer this key was given and its rating (null when not rated yet)."""
        _, who = caller(request)

        def read() -> dict[str, Any]:
            holder.get()
            return feedback.FeedbackStore(holder.path).answer(answer_id, who)

        try:
            return feedback.shown(await asyncio.to_thread(read))
        except feedback.AnswerNotFound:
            raise HTTPException(404, MISSING) from None
