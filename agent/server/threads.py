"""Conversation routes: POST /threads/{thread_id}/ask answers a question as the next turn of the caller's
thread (a follow-up is condensed with the thread's earlier questions); GET /threads/{thread_id} returns
that thread's history, DELETE /threads/{thread_id} forgets it.

Threads are the caller's own: the stored thread id is prefixed with the identity's user, so one caller can
never read or continue another's thread, whatever id it sends. A turn runs like /ask/invoke otherwise:
`server_configurable` forces the caller's access scope, and the thread lives in the served index's
`threads.sqlite` (ragroute.ask(thread_id=...)).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from ragroute.api import aask
from ragroute.context import Context
from ragroute.runtime import threads
from ragroute.runtime.providers import using
from ragroute.server.guard import identity_of
from ragroute.server.policy import check_question_input, server_configurable, without_server_paths
from ragroute.server.state import IndexHolder, ServerSettings
from ragroute.tools.errors import RagrouteError
from ragroute.workflow import graph


class ThreadConfig(BaseModel):
    """Run settings, as under /ask/invoke's `config`."""

    model_config = ConfigDict(extra="forbid")
    configurable: dict[str, Any] = Field(default_factory=dict)


class ThreadQuestion(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")
    question: str
    config: ThreadConfig = Field(default_factory=ThreadConfig)


def scoped_thread_id(user: str, thread_id: str) -> str:
    """The stored id of the caller's thread: its user's name (length-prefixed, so no id can imitate it)."""
    return f"{len(user)}:{user}:{threads.check_thread_id(thread_id)}"


def add_thread_routes(app: FastAPI, holder: IndexHolder, settings: ServerSettings) -> None:
    """POST /threads/{thread_id}/ask, GET and DELETE /threads/{thread_id}."""

    @app.post("/threads/{thread_id}/ask", tags=["threads"])
    async def ask_in_thread(thread_id: str, body: ThreadQuestion, request: Request) -> dict[str, Any]:
        """Answer `question` as the next turn of the caller's thread `thread_id` (created on first use)."""
        ident = identity_of(request)
        check_question_input({"question": body.question}, settings.max_question_chars)
        scoped = scoped_thread_id(ident.user, thread_id)
        try:
            configurable = server_configurable(body.config.configurable, ident, settings)
        except (RagrouteError, ValueError, TypeError) as exc:  # Context checks some values with float()
            raise HTTPException(422, str(exc)) from None
        served = holder.providers()
        await asyncio.to_thread(holder.get)  # opened off the event loop before the graph searches it
        out = await aask(body.question, context=configurable, providers=served, thread_id=scoped)
        return without_server_paths(out)  # a citation's source names no file on the server

    async def history_of(scoped: str) -> list[dict]:
        await asyncio.to_thread(holder.get)
        with using(holder.providers()):
            async with threads.saver(Context.from_dict({"index_dir": settings.index_dir})) as saver:
                state = await graph.copy(update={"checkpointer": saver}).aget_state(
                    {"configurable": {"thread_id": scoped}}
                )
        return list((state.values or {}).get("history") or [])

    @app.get("/threads/{thread_id}", tags=["threads"])
    async def thread_history(thread_id: str, request: Request) -> dict[str, Any]:
        """The questions and answers of the caller's thread `thread_id` (404 when it has none)."""
        history = await history_of(scoped_thread_id(identity_of(request).user, thread_id))
        if not history:
            raise HTTPException(404, f"no thread {thread_id!r}")
        return {"thread_id": thread_id, "history": history}

    @app.delete("/threads/{thread_id}", tags=["threads"], status_code=204)
    async def delete_thread(thread_id: str, request: Request) -> Response:
        """Forget the caller's thread `thread_id`: every checkpoint of it (404 when it has none)."""
        scoped = scoped_thread_id(identity_of(request).user, thread_id)
        if not await history_of(scoped):
            raise HTTPException(404, f"no thread {thread_id!r}")
        with using(holder.providers()):
            async with threads.saver(Context.from_dict({"index_dir": settings.index_dir})) as saver:
                await saver.adelete_thread(scoped)
        return Response(status_code=204)
