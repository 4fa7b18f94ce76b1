"""The storage-backend contract: every test in tests/conformance runs once per backend, through
`open_index(location)` only, so a backend passes exactly when it behaves like the others.

Backends: "embedded" (SQLite + Chroma + BM25 in a tmp folder) and "milvus-lite" (Milvus Lite's file mode:
no server, one local file). Milvus params carry the `milvus` marker (`-m "not milvus"` drops them); they
skip when the `milvus` extra is not installed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_batch

BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("milvus-lite", id="milvus-lite", marks=pytest.mark.milvus),
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "milvus: runs against a Milvus backend (Milvus Lite or a server)")


def location_for(backend: str, folder: Path, name: str = "index") -> str:
    """Where `backend` keeps an index called `name` under `folder` (a folder, or a Milvus Lite file URL)."""
    if backend == "embedded":
        return str(folder / name)
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    return f"milvus-lite://{folder / 'milvus.db'}/{name}"


OpenBackend = Callable[..., Any]


def _opener(backend: str, folder: Path, embedder: Any, opened: list[Any]) -> OpenBackend:
    counter = itertools.count()

    def open_backend(
        corpus: list[tuple[str, str, str, dict[str, Any]]] | None = None,
        *,
        empty: bool = False,
        name: str | None = None,
        **config_kw: Any,
    ) -> Any:
        """A HybridIndex on this backend (`name` reopens an earlier one), loaded with `corpus`
        (default TINY_CORPUS) unless `empty`."""
        from ragroute.tools.index import open_index

        where = location_for(backend, folder, name or f"index{next(counter)}")
        index = open_index(where, embedder=embedder, **config_kw)
        opened.append(index)
        if not empty:
            index.upsert_documents(corpus_batch(corpus))
        return index

    return open_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    return str(request.param)


@pytest.fixture
def open_backend(backend: str, tmp_path: Path, embedder: Any) -> Iterator[OpenBackend]:
    """Factory: `open_backend(corpus=None, *, empty=False, name=None, **config_kw) -> HybridIndex`."""
    opened: list[Any] = []
    yield _opener(backend, tmp_path, embedder, opened)
    for index in opened:
        index.close()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[OpenBackend]:
    """Module-wide factory like `open_backend`, for indexes that several read-only tests share."""
    opened: list[Any] = []
    yield _opener(str(request.param), tmp_path_factory.mktemp("shared"), embedder, opened)
    for index in opened:
        index.close()


@pytest.fixture(scope="module")
def tiny(shared_backend: OpenBackend) -> Any:
    """TINY_CORPUS indexed once per module and backend, for tests that only read."""
    return shared_backend()
