"""The storage-backend contract: every test in tests/conformance runs once per backend, through
`open_index(location)` only, so a backend passes exactly when it behaves like the others.

Backends: "embedded" (SQLite + Chroma + BM25 in a tmp folder) and "milvus-lite" (Milvus Lite's file mode:
no server, one local file). Milvus params carry the `milvus` marker (`-m "not milvus"` drops them); they
skip when the `milvus` extra is not installed. Creating a Milvus index (its collections) takes seconds, so
the default run keeps the Milvus tests on each module's shared index and marks `slow` the Milvus tests that
build their own (`-m slow` or `-m milvus` runs them).
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.path.is_relative_to(here) and callspec and callspec.params.get("backend") == "milvus-lite":
            item.add_marker(pytest.mark.slow)  # builds its own Milvus index (see the module docstring)


def location_for(backend: str, folder: Path, name: str = "index") -> str:
    """Where `backend` keeps an index called `name` under `folder` (a folder, or a Milvus Lite file URL:
    one file, one collection prefix per name)."""
    if backend == "embedded":
        return str(folder / name)
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    return f"milvus://{folder / 'milvus.db'}?name={name}"


OpenBackend = Callable[..., Any]


def _opener(backend: str, folder: Path, embedder: Any, opened: list[Any]) -> OpenBackend:
    counter = itertools.count()

    def open_backend(
        corpus: list[tuple[str, str, str, dict[str, Any]]] | None = None,
        *,
        empty: bool = False,
        name: str | None = None,
        state: str = "state",
        **config_kw: Any,
    ) -> Any:
        """A HybridIndex on this backend (`name` reopens an earlier one), loaded with `corpus`
        (default TINY_CORPUS) unless `empty`; `state`: the local folder of a Milvus index's side files
        (another one plays another machine)."""
        from ragroute.tools.index import open_index

        where = location_for(backend, folder, name or f"index{next(counter)}")
        # a Milvus index keeps its local files (PII mappings) in $RAGROUTE_STATE_DIR: under `folder` too
        with pytest.MonkeyPatch.context() as env:
            env.setenv("RAGROUTE_STATE_DIR", str(folder / state))
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
