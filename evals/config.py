"""Eval settings: one user config (dict, JSON or JSON file) split into index, search and graph settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ragroute.context import Context
from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.index import IndexConfig

# settings of one retrieval-mode search
SEARCH_KEYS = ("reranker", "candidate_k", "rerank_depth", "weights", "filters")
# index settings that are not IndexConfig fields: chunk sizes and where indexes are
EXTRA_INDEX_KEYS = {"child_tokens", "parent_tokens", "index_dir", "eval_index_dir"}


def index_config_fields() -> set[str]:
    """The IndexConfig fields (settings passed to HybridIndex.open)."""
    return {f.name for f in dataclasses.fields(IndexConfig)}


def split_config(
    config: dict[str, Any] | None, mode: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split one user config into (index settings, search settings, graph context overrides).

    Index settings are ragroute.tools.index.IndexConfig fields, chunk sizes, `eval_index_dir` (where the
    indexes built from BEIR corpora live) and `index_dir` (an existing index, for golden sets); search
    settings are reranker/candidate_k/rerank_depth/weights/filters; graph overrides are
    ragroute.context.Context fields. Unknown keys are a ConfigError listing the options.
    """
    config = dict(config or {})
    index_fields = index_config_fields() | EXTRA_INDEX_KEYS
    context_fields = Context.field_names() if mode == "graph" else set()
    index_cfg: dict[str, Any] = {}
    search_cfg: dict[str, Any] = {}
    graph_cfg: dict[str, Any] = {}
    for key, value in config.items():
        if key in context_fields:
            graph_cfg[key] = value
            if key == "rrf_k":  # also chosen when the index is opened
                index_cfg[key] = value
        elif key in index_fields:
            index_cfg[key] = value
        elif key in SEARCH_KEYS and mode == "retrieval":
            search_cfg[key] = value
        else:
            options = sorted(index_fields | (context_fields or set(SEARCH_KEYS)))
            raise ConfigError(f"unknown eval setting {key!r} for --mode {mode}; options: {options}")
    index_cfg.pop("path", None)
    return index_cfg, search_cfg, graph_cfg


def parse_config(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """A config given as a dict, a JSON string, or a path to a JSON file."""
    if raw is None or isinstance(raw, dict):
        return dict(raw or {})
    text = raw
    if not raw.lstrip().startswith("{"):
        path = Path(raw).expanduser()
        if not path.is_file():
            raise InputError(f"--config {raw!r} is neither a JSON object nor an existing JSON file")
        text = path.read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--config is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise InputError("--config must be a JSON object of settings")
    return value
