"""Fixtures shared by the feedback tests (Python API and HTTP)."""

from __future__ import annotations

from typing import Any

import pytest
from ragroute.runtime import caching
from ragroute.tools.index import HybridIndex, IndexConfig

from tests.conftest import corpus_batch


@pytest.fixture(scope="module")
def shared_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Any:
    """The tiny corpus indexed once per module (each test rates its own fresh answers)."""
    folder = tmp_path_factory.mktemp("feedback") / "index"
    index = HybridIndex(IndexConfig(path=str(folder)), embedder=embedder)
    index.upsert_documents(corpus_batch())
    yield index
    index.close()


@pytest.fixture
def index(shared_index: Any) -> Any:
    """The shared index with an empty cache: another test's cached answer must not stand in for this run."""
    caching.set_cache()
    yield shared_index
    caching.set_cache()
