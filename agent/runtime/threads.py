"""Conversation threads: a durable LangGraph checkpointer in a SQLite file beside the index.

`ragroute.ask(q, thread_id="t1")` keeps each thread's state (its `history` of questions and answers) in
`<index_dir>/threads.sqlite`, so a later call, or another process, continues the conversation.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from ragroute.runtime import providers
from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.index.config import local_folder

THREADS_FILE = "threads.sqlite"
MAX_THREAD_ID = 200


def check_thread_id(thread_id: Any) -> str:
    """`thread_id` as a non-empty string of at most MAX_THREAD_ID characters, else an InputError."""
    if not isinstance(thread_id, str) or not thread_id.strip():
        raise InputError("thread_id must be a non-empty string")
    if len(thread_id) > MAX_THREAD_ID:
        raise InputError(f"thread_id is {len(thread_id)} characters; at most {MAX_THREAD_ID} are allowed")
    if not thread_id.isprintable():  # control characters, or a lone surrogate SQLite cannot store
        raise InputError("thread_id must be printable text (no control characters)")
    return thread_id


def threads_path(ctx: Any) -> Path:
    """The threads file of the run's index: beside a bound index's files, else in ctx's index_dir."""
    bound = providers.current()
    folder = getattr(bound.index, "path", None) if bound is not None and bound.index is not None else None
    return Path(folder or local_folder(ctx.resolved_index_dir)) / THREADS_FILE


@asynccontextmanager
async def saver(ctx: Any) -> AsyncIterator[AsyncSqliteSaver]:
    """An open AsyncSqliteSaver on the run's threads file (the index folder must exist)."""
    path = threads_path(ctx)
    if not os.path.isdir(path.parent):
        raise ConfigError(f"index_dir={str(path.parent)!r} does not exist; ingest documents first")
    async with AsyncSqliteSaver.from_conn_string(str(path)) as checkpointer:
        # a deleted thread's pages are zeroed, not left readable in the file (its text is user data)
        await checkpointer.conn.execute("PRAGMA secure_delete = ON")
        yield checkpointer
