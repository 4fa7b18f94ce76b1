"""The index directory's process lock: flock on <index>/lock, shared by every instance in one process."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ragroute.tools.errors import IndexError_

_LOCKS: dict[str, tuple[int, int]] = {}  # path -> (fd, refcount), shared by instances in one process
_LOCKS_GUARD = threading.Lock()


def acquire_lock(path: str, timeout: float) -> None:
    """Hold the lock of the index at `path` (re-entrant within a process); IndexError_ after `timeout` s."""
    with _LOCKS_GUARD:
        if path in _LOCKS:
            fd, n = _LOCKS[path]
            _LOCKS[path] = (fd, n + 1)
            return
        fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise IndexError_(
                        f"index {path} is locked by another process (pid {holder}); close it, or share "
                        "vectors through chroma_mode='http'"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _LOCKS[path] = (fd, 1)


def release_lock(path: str) -> None:
    """Drop one hold on the lock of the index at `path`; the last one unlocks the file."""
    with _LOCKS_GUARD:
        if path not in _LOCKS:
            return
        fd, n = _LOCKS[path]
        if n > 1:
            _LOCKS[path] = (fd, n - 1)
            return
        del _LOCKS[path]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class SharedExclusive:
    """A readers-writer lock: many `shared()` holders at once, or one `exclusive()` holder (writers wait
    for current readers, new readers wait for a waiting writer). The stdlib has none; this is ~25 lines."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock with other readers."""
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone."""
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


_GATES: dict[str, SharedExclusive] = {}
_GATES_GUARD = threading.Lock()


def chroma_gate(path: str) -> SharedExclusive:
    """The process-wide gate of the Chroma files under index `path`: queries hold it shared, the
    compaction that rewrites those files (VACUUM from another SQLite connection) holds it exclusive."""
    key = os.path.realpath(path)
    with _GATES_GUARD:
        return _GATES.setdefault(key, SharedExclusive())
