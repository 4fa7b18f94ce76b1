"""The storage-backend contract: every test in tests/conformance runs once per backend, through
`open_index(location)` only, so a backend passes exactly when it behaves like the others.

Backends: "embedded" (SQLite + Chroma + BM25 in a tmp folder), "milvus-lite" (Milvus Lite's file mode:
no server, one local file) and "milvus-server" (`milvus://HOST:PORT/NAME` on a real `milvus-lite server`
process started once per session). Milvus params carry the `milvus` marker (`-m "not milvus"` drops them);
they skip when the `milvus` extra is not installed. Creating a Milvus index (its collections) takes
seconds, so the default run keeps the milvus-lite tests on each module's shared index and marks `slow` the
Milvus tests that build their own and every milvus-server test (`-m ""` runs everything).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_batch

BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("milvus-lite", id="milvus-lite", marks=pytest.mark.milvus),
    pytest.param(
        "milvus-server",
        id="milvus-server",
        marks=[pytest.mark.milvus, pytest.mark.slow, pytest.mark.integration],
    ),
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "milvus: runs against a Milvus backend (Milvus Lite or a server)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (
            item.path.is_relative_to(here)
            and callspec
            and callspec.params.get("backend", "embedded") != "embedded"
        ):
            item.add_marker(pytest.mark.slow)  # builds its own Milvus index (see the module docstring)


def location_for(backend: str, folder: Path, name: str = "index", server: str = "") -> str:
    """Where `backend` keeps an index called `name` for the test owning `folder`: a folder, a Milvus Lite
    file URL (one file, one collection prefix per name) or a URL on the shared `server` (HOST:PORT)."""
    if backend == "embedded":
        return str(folder / name)
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    if backend == "milvus-lite":
        return f"milvus://{folder / 'milvus.db'}?name={name}"
    test = hashlib.sha1(str(folder).encode()).hexdigest()[:10]  # tests share the server, not their indexes
    return f"milvus://{server}/t{test}_{name}"


@pytest.fixture(scope="session")
def conformance_milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A `milvus-lite server` process for the session: (HOST:PORT, its data folder)."""
    from tests.integration.test_milvus_consistency import milvus_lite_server

    data = tmp_path_factory.mktemp("milvus-server") / "data"
    with milvus_lite_server(data) as where:
        yield where, data


@pytest.fixture
def stored_under(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], list[Path]]:
    """The folders a test's index has written to: its tmp folder, and on a Milvus server the data folders
    of this test's collections (other tests' are not its concern)."""
    if backend != "milvus-server":
        return lambda: [tmp_path]
    data = request.getfixturevalue("conformance_milvus_server")[1]
    test = hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    return lambda: [tmp_path, *sorted(data.rglob(f"t{test}_*"))]


def _server(backend: str, request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("conformance_milvus_server")[0] if backend == "milvus-server" else ""


OpenBackend = Callable[..., Any]


def _opener(backend: str, folder: Path, embedder: Any, opened: list[Any], server: str = "") -> OpenBackend:
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

        where = location_for(backend, folder, name or f"index{next(counter)}", server)
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
def open_backend(
    backend: str, tmp_path: Path, embedder: Any, request: pytest.FixtureRequest
) -> Iterator[OpenBackend]:
    """Factory: `open_backend(corpus=None, *, empty=False, name=None, **config_kw) -> HybridIndex`."""
    opened: list[Any] = []
    yield _opener(backend, tmp_path, embedder, opened, _server(backend, request))
    for index in opened:
        index.close()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[OpenBackend]:
    """Module-wide factory like `open_backend`, for indexes that several read-only tests share."""
    opened: list[Any] = []
    backend = str(request.param)
    folder = tmp_path_factory.mktemp("shared")
    yield _opener(backend, folder, embedder, opened, _server(backend, request))
    for index in opened:
        index.close()


@pytest.fixture(scope="module")
def tiny(shared_backend: OpenBackend) -> Any:
    """TINY_CORPUS indexed once per module and backend, for tests that only read."""
    return shared_backend()
