"""Feedback on answers: what each delivered answer was (question, route, citations, caller, scope, time)
and the caller's rating of it, in `<index>/feedback.sqlite` (`tracing.score_feedback` sends a rating to
Langfuse as a score on the answer's trace).

A caller rates and reads only answers it was given: each answer record names its caller ("key:<user>"
for a server key, "local:<user_id>" for the Python API), and an answer of another caller is treated
exactly like a missing one (`AnswerNotFound`). Answers nobody rated are forgotten after
`RAGROUTE_ANSWER_RETENTION_DAYS` (default 30); `RAGROUTE_FEEDBACK=0` records nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragroute.runtime import answer_ids, providers
from ragroute.runtime.scope import access_of
from ragroute.tools.errors import InputError, RagrouteError, check_unicode
from ragroute.tools.index.config import local_folder
from ragroute.tools.pii import redact_query

log = logging.getLogger("ragroute.runtime.feedback")

FEEDBACK_FILE = "feedback.sqlite"
RATINGS = ("up", "down")
MAX_ANSWER_CHARS = 4_000  # a correct answer
MAX_COMMENT_CHARS = 2_000
MAX_DOC_ID_CHARS = 1_000
_PRUNE_EVERY_S = 3600.0
_OPEN_FILES = 16  # feedback files this process keeps open
_OFF = ("0", "false", "no", "off")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    answer_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    created_at REAL NOT NULL,
    question TEXT NOT NULL,
    asked TEXT,
    answer TEXT NOT NULL,
    route TEXT,
    abstained INTEGER NOT NULL,
    citations TEXT NOT NULL,
    scope TEXT NOT NULL,
    trace_id TEXT
);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id TEXT PRIMARY KEY REFERENCES answers(answer_id) ON DELETE CASCADE,
    rating TEXT NOT NULL,
    correct_answer TEXT,
    correct_source TEXT,
    comment TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_created ON answers(created_at);
"""
_SELECT = "SELECT a.*, f.rating, f.correct_answer, f.correct_source, f.comment, f.updated_at AS rated_at"


class AnswerNotFound(RagrouteError):
    """No answer with this id was given to this caller (missing and another caller's look the same)."""


@dataclass(frozen=True)
class Rating:
    """One caller's feedback on one answer, validated (`Rating.checked`)."""

    rating: str
    correct_answer: str | None = None
    correct_source: str | None = None
    comment: str | None = None

    @classmethod
    def checked(
        cls,
        rating: Any,
        correct_answer: Any = None,
        correct_source: Any = None,
        comment: Any = None,
    ) -> Rating:
        """A Rating, or InputError naming the bad field (unknown rating, too long, not text)."""
        if rating not in RATINGS:
            raise InputError(f"rating={str(rating)[:40]!r} is unknown; options: {list(RATINGS)}")
        fields = {"correct_answer": correct_answer, "correct_source": correct_source, "comment": comment}
        limits = {
            "correct_answer": MAX_ANSWER_CHARS,
            "correct_source": MAX_DOC_ID_CHARS,
            "comment": MAX_COMMENT_CHARS,
        }
        for name, value in fields.items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise InputError(f"{name} must be a string")
            if len(value) > limits[name]:
                raise InputError(f"{name} is {len(value)} characters; the limit is {limits[name]}")
            check_unicode(value, name)
        cleaned = {k: (v.strip() or None) if isinstance(v, str) else None for k, v in fields.items()}
        return cls(rating=str(rating), **cleaned)


def caller_of(ctx: Any) -> str:
    """Who a run answers: the server's caller ("key:<user>", set in `extra` by the server), else the
    Python API's "local:<extra user_id>"."""
    extra = getattr(ctx, "extra", None) or {}
    caller = extra.get("caller")
    return caller if isinstance(caller, str) and caller else local_caller(extra.get("user_id"))


def server_caller(user: str) -> str:
    """The caller name of answers the HTTP server gives a key of `user`."""
    return f"key:{user}"


def local_caller(user: Any = None) -> str:
    """The caller name of Python API answers asked with `extra={"user_id": user}` (or none)."""
    return f"local:{user or ''}"


def enabled() -> bool:
    """Whether answers are recorded (RAGROUTE_FEEDBACK=0 turns recording off)."""
    return os.environ.get("RAGROUTE_FEEDBACK", "1").lower() not in _OFF


def _retention_s() -> float:
    try:
        return max(float(os.environ.get("RAGROUTE_ANSWER_RETENTION_DAYS", "30")), 0.0) * 86400
    except ValueError:
        return 30 * 86400.0


class FeedbackStore:
    """The answers and ratings of one index, in `<folder>/feedback.sqlite` (WAL, safe across processes)."""

    _pruned: dict[str, float] = {}  # when each file last forgot old answers (this process)
    # one open connection per file (closing the last one to a WAL file checkpoints it: ~15 ms per answer)
    _open: OrderedDict[str, tuple[sqlite3.Connection, int]] = OrderedDict()
    _lock = threading.Lock()

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / FEEDBACK_FILE

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:  # one transaction at a time per process; other processes wait on SQLite's lock
            db = self._connection()
            with db:
                yield db

    def _connection(self) -> sqlite3.Connection:
        key = str(self.path)
        found = self._open.get(key)
        inode = _inode(key)
        if found is not None and found[1] == inode:
            self._open.move_to_end(key)
            return found[0]
        if found is not None:  # the file was deleted (to forget everything) or replaced
            found[0].close()
        db = sqlite3.connect(key, timeout=10.0, check_same_thread=False)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA secure_delete = ON")  # a forgotten answer's text is zeroed, not left behind
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash loses no commit, only a power cut may
        db.executescript(_SCHEMA)
        self._open[key] = (db, _inode(key))
        while len(self._open) > _OPEN_FILES:
            self._open.popitem(last=False)[1][0].close()
        return db

    def exists(self) -> bool:
        """Whether the file has been created (nothing recorded yet otherwise)."""
        return self.path.is_file()

    def add_answer(self, record: Mapping[str, Any]) -> None:
        """Store one delivered answer (and forget unrated old ones, at most once an hour)."""
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record["answer_id"],
                    record["caller"],
                    record.get("created_at", now),
                    record["question"],
                    record.get("asked"),
                    record["answer"],
                    record.get("route"),
                    int(bool(record.get("abstained"))),
                    json.dumps(record.get("citations") or []),
                    json.dumps(record.get("scope")),
                    record.get("trace_id"),
                ),
            )
            if now - self._pruned.get(str(self.path), 0.0) > _PRUNE_EVERY_S:
                self._pruned[str(self.path)] = now
                db.execute(
                    "DELETE FROM answers WHERE created_at < ? AND answer_id NOT IN "
                    "(SELECT answer_id FROM feedback)",
                    (now - _retention_s(),),
                )

    def trace_id(self, answer_id: str) -> str | None:
        """The Langfuse trace of answer `answer_id` (any caller's), or None."""
        if not self.exists():
            return None
        with self._db() as db:
            found = db.execute("SELECT trace_id FROM answers WHERE answer_id = ?", (answer_id,)).fetchone()
        return found[0] if found else None

    def answer(self, answer_id: str, caller: str) -> dict[str, Any]:
        """The answer `answer_id` given to `caller` with its feedback (if any); AnswerNotFound otherwise."""
        if not isinstance(answer_id, str) or not answer_ids.ANSWER_ID.match(answer_id) or not self.exists():
            raise AnswerNotFound(f"no answer {str(answer_id)[:64]!r}")
        with self._db() as db:
            cur = db.execute(
                f"{_SELECT} FROM answers a LEFT JOIN feedback f USING (answer_id) "
                "WHERE a.answer_id = ? AND a.caller = ?",
                (answer_id, caller),
            )
            row = cur.fetchone()
        if row is None:
            raise AnswerNotFound(f"no answer {answer_id!r}")
        return _row([d[0] for d in cur.description], row)

    def rate(self, answer_id: str, caller: str, rating: Rating) -> dict[str, Any]:
        """Store (or replace) `caller`'s rating of its answer `answer_id`; returns the answer with it."""
        self.answer(answer_id, caller)  # AnswerNotFound for a missing or another caller's answer
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO feedback VALUES (?,?,?,?,?,?,?) ON CONFLICT(answer_id) DO UPDATE SET "
                "rating=excluded.rating, correct_answer=excluded.correct_answer, comment=excluded.comment, "
                "correct_source=excluded.correct_source, updated_at=excluded.updated_at",
                (
                    answer_id,
                    rating.rating,
                    rating.correct_answer,
                    rating.correct_source,
                    rating.comment,
                    now,
                    now,
                ),
            )
        return self.answer(answer_id, caller)

    def rated(self, only: str = "all") -> list[dict[str, Any]]:
        """Every rated answer (every caller's: for the operator's export), oldest rating first;
        `only`: "good" (thumbs up), "bad" (thumbs down) or "all"."""
        wanted = {"good": ("up",), "bad": ("down",), "all": RATINGS}.get(only)
        if wanted is None:
            raise InputError(f"only={only!r} is unknown; options: ['bad', 'good', 'all']")
        if not self.exists():
            return []
        with self._db() as db:
            cur = db.execute(
                f"{_SELECT} FROM feedback f JOIN answers a USING (answer_id) "
                f"WHERE f.rating IN ({','.join('?' * len(wanted))}) ORDER BY f.updated_at, a.answer_id",
                wanted,
            )
            names = [d[0] for d in cur.description]
            return [_row(names, r) for r in cur.fetchall()]


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1


def _row(names: list[str], row: tuple) -> dict[str, Any]:
    out = dict(zip(names, row, strict=True))
    out["citations"] = json.loads(out["citations"])
    out["scope"] = json.loads(out["scope"])
    out["abstained"] = bool(out["abstained"])
    return out


def store_folder(ctx: Any) -> str | None:
    """Where the run's feedback file lives: beside a bound index's files, else the run's index_dir; None
    when the index has no local folder (a test fake) or the folder does not exist."""
    bound = providers.current()
    if bound is not None and bound.index is not None:
        folder = getattr(bound.index, "path", None)
    else:
        folder = local_folder(ctx.resolved_index_dir)  # a Milvus location: its local state folder
    return str(folder) if folder and os.path.isdir(folder) else None


def _scope(ctx: Any) -> dict[str, Any] | str:
    access = access_of(ctx)
    return "all" if access is None else {"groups": list(access.groups or []), "clearance": access.clearance}


def answer_record(
    ctx: Any, answer_id: str, question: str, output: Mapping[str, Any], *, asked: str | None = None
) -> dict[str, Any]:
    """What is kept of one delivered answer: question, answer, route, cited documents, caller, scope."""
    if getattr(ctx, "redact_query_pii", False):  # server runs may carry the raw question this far
        question = redact_query(question)
        asked = redact_query(asked) if asked else asked
    citations = [
        {"n": c.get("n"), "doc_id": c.get("doc_id", ""), "chunk_id": c.get("chunk_id", "")}
        for c in output.get("citations") or []
    ]
    return {
        "answer_id": answer_id,
        "caller": caller_of(ctx),
        "created_at": time.time(),
        "question": question,
        "asked": asked if asked and asked != question else None,
        "answer": str(output.get("answer") or ""),
        "route": output.get("route"),
        "abstained": bool(output.get("abstained")),
        "citations": citations,
        "scope": _scope(ctx),
    }


async def record(ctx: Any, record_: dict[str, Any], *, trace_of: str | None = None) -> None:
    """Store a delivered answer beside the run's index (off the event loop); never fails the answer.
    `trace_of`: an earlier answer id whose trace this answer repeats (a response-cache hit)."""
    folder = store_folder(ctx) if enabled() else None
    if folder is None:
        return

    def write() -> None:
        store = FeedbackStore(folder)
        if trace_of is not None:
            record_["trace_id"] = store.trace_id(trace_of)
        store.add_answer(record_)

    try:
        await asyncio.to_thread(write)
    except (OSError, sqlite3.Error) as exc:  # a read-only index folder: answers still flow, unrecorded
        log.warning("answer %s not recorded for feedback: %s", record_.get("answer_id"), exc)


def give(
    folder: str,
    answer_id: str,
    caller: str,
    rating: Rating,
    can_read: Callable[[str], bool],
) -> dict[str, Any]:
    """Rate `caller`'s answer `answer_id` in the store of `folder`: AnswerNotFound for a missing or
    another caller's answer, InputError for a correct source the caller cannot read (a hidden document
    and a missing one get the same words). The caller sends it to Langfuse (`tracing.score_feedback`)."""
    store = FeedbackStore(folder)
    store.answer(answer_id, caller)
    if rating.correct_source is not None and not can_read(rating.correct_source):
        raise InputError(f"correct_source {rating.correct_source[:200]!r} is not a document in this index")
    return store.rate(answer_id, caller, rating)


def shown(answer: Mapping[str, Any]) -> dict[str, Any]:
    """What a caller reads back of its rated answer (no caller name, scope or trace internals)."""
    keys = ("answer_id", "question", "answer", "route", "abstained", "citations", "created_at")
    out = {k: answer.get(k) for k in keys}
    out["feedback"] = (
        None
        if answer.get("rating") is None
        else {k: answer.get(k) for k in ("rating", "correct_answer", "correct_source", "comment", "rated_at")}
    )
    return out
