"""Answer ids: every answer ask/aask and the server deliver gets one, naming its feedback record (which
also keeps the id of the run's Langfuse trace, when Langfuse is on).

An entry point opens `delivering()` around a run; finalize reads `current()`: the id to give the answer
and whether to record it for feedback (`runtime.feedback`). A graph run outside any delivery (Studio,
evals, `graph.invoke`) still gets a fresh id but is not recorded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

ANSWER_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Delivery:
    """One delivered run: its answer id (None: each answer of a batch mints its own) and, once tracing
    opened the run's Langfuse trace, that trace's id (runtime.tracing sets it)."""

    answer_id: str | None
    trace_id: str | None = None


_CURRENT: ContextVar[Delivery | None] = ContextVar("ragroute_delivery", default=None)


def new_id() -> str:
    """A fresh answer id: 32 lowercase hex characters."""
    return uuid.uuid4().hex


def current() -> Delivery | None:
    """The delivery this run belongs to, or None outside ask/aask and the server."""
    return _CURRENT.get()


@contextmanager
def delivering(answer_id: str | None = None, *, one: bool = True) -> Iterator[Delivery]:
    """Mark the runs inside as delivered (recorded for feedback); `one=False` for a batch, whose answers
    each mint their own id."""
    delivery = Delivery(answer_id=(answer_id or new_id()) if one else None)
    token = _CURRENT.set(delivery)
    try:
        yield delivery
    finally:
        try:
            _CURRENT.reset(token)
        except ValueError:  # a stream closed from another context: its context is gone with it
            pass
