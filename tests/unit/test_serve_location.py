"""create_app keeps a Milvus index location as given: `ragroute serve --index milvus://HOST:PORT/NAME`
serves that Milvus index, not an empty local folder named `milvus:` under the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from ragroute.server.app import create_app


def test_milvus_location_is_not_made_a_local_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    app = create_app("milvus://127.0.0.1:19530/replicas", {}, tracing=False)
    assert app.state.settings.index_dir == "milvus://127.0.0.1:19530/replicas"
    assert app.state.index.index_dir == "milvus://127.0.0.1:19530/replicas"
    assert not (tmp_path / "milvus:").exists()


def test_folder_locations_still_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    app = create_app("idx", {}, tracing=False)
    assert app.state.settings.index_dir == str(tmp_path / "idx")
