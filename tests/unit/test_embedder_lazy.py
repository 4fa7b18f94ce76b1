"""The local sentence-transformers embedder loads its model on first use, and the size it declares from the
model's files (what opening an index reads) is the size the loaded model produces."""

from __future__ import annotations

import json
from pathlib import Path

from ragroute.tools.embeddings import SentenceTransformerEmbedder, _dimension_from_files, minilm_path


def test_declared_dimension_needs_no_model_and_matches_the_loaded_one() -> None:
    emb = SentenceTransformerEmbedder(minilm_path(), name="minilm")
    assert emb.dimension == 384 and emb._loaded is None  # read from modules.json + 1_Pooling/config.json
    assert len(emb.embed_query("hello")) == 384 and emb._loaded is not None


def test_a_dense_head_or_an_unknown_layer_is_read_or_left_to_the_model(tmp_path: Path) -> None:
    def folder(modules: list[dict], configs: dict[str, dict]) -> str:
        path = tmp_path / str(len(list(tmp_path.iterdir())))
        path.mkdir()
        (path / "modules.json").write_text(json.dumps(modules))
        for sub, cfg in configs.items():
            (path / sub).mkdir()
            (path / sub / "config.json").write_text(json.dumps(cfg))
        return str(path)

    base = [
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    pooling = {
        "word_embedding_dimension": 768,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": True,
    }
    dense = [*base, {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    odd = [*base, {"path": "2_Odd", "type": "my_pkg.Projector"}]
    assert _dimension_from_files(folder(base, {"1_Pooling": pooling})) == 1536  # two pooled modes
    assert (
        _dimension_from_files(folder(dense, {"1_Pooling": pooling, "2_Dense": {"out_features": 256}})) == 256
    )
    assert _dimension_from_files(folder(odd, {"1_Pooling": pooling, "2_Odd": {}})) is None
    assert _dimension_from_files(str(tmp_path / "missing")) is None
