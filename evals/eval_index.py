"""Evaluation indexes: a BEIR corpus indexed once into a folder keyed by dataset, corpus and build settings.

The folder is reused while those are unchanged; a marker file records a finished build, so an
interrupted one is resumed (documents already stored with the same content hash are skipped).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ragroute.evals.config import index_config_fields
from ragroute.evals.datasets import EvalDataset
from ragroute.tools.errors import InputError, RagrouteError
from ragroute.tools.index import HybridIndex
from ragroute.tools.ingest import ingest_documents
from ragroute.tools.types import Document

MARKER = "ragroute_eval_index.json"
# settings that change what is stored in the index (a different value means a different index folder)
BUILD_KEYS = ("embedding", "child_tokens", "parent_tokens", "collection")


def eval_index_root(index_cfg: dict[str, Any] | None = None) -> Path:
    """Where eval indexes live: config eval_index_dir, $RAGROUTE_EVAL_INDEX_DIR, or ~/.ragroute/eval."""
    root = (index_cfg or {}).get("eval_index_dir") or os.environ.get("RAGROUTE_EVAL_INDEX_DIR")
    return Path(root or Path.home() / ".ragroute" / "eval").expanduser()


def index_dir_for(dataset: EvalDataset, index_cfg: dict[str, Any] | None = None) -> Path:
    """Index folder for a dataset: named by dataset, corpus fingerprint and build settings."""
    build = {k: (index_cfg or {}).get(k) for k in BUILD_KEYS if (index_cfg or {}).get(k) is not None}
    key = hashlib.sha256(
        json.dumps([dataset.corpus_fingerprint(), build], sort_keys=True).encode()
    ).hexdigest()
    return eval_index_root(index_cfg) / f"{dataset.name}-{key[:12]}"


def _documents(dataset: EvalDataset) -> list[Document]:
    return [
        Document(
            doc_id=doc_id,
            text=doc["text"],
            title=doc.get("title", ""),
            source=f"{dataset.name}/{doc_id}",
            metadata={
                k: v for k, v in doc.get("metadata", {}).items() if isinstance(v, str | int | float | bool)
            },
            format="text",
        )
        for doc_id, doc in dataset.corpus.items()
    ]


def _open_index(path: Path, index_cfg: dict[str, Any]) -> Any:
    open_kw = {k: v for k, v in index_cfg.items() if k in index_config_fields() and k != "path"}
    return HybridIndex.open(str(path), **open_kw)


def _ingest(index: Any, docs: list[Document], index_cfg: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Add documents through the ingestion pipeline; returns its report summary."""
    chunk_kw = {k: index_cfg[k] for k in ("child_tokens", "parent_tokens") if k in index_cfg}
    report = ingest_documents(index, docs, progress=progress, use_sidecar=False, total=len(docs), **chunk_kw)
    if report.failed and len(report.failed) == len(docs):
        raise InputError(f"no document could be indexed; first failure: {report.failed[0]}")
    return {
        "added": len(report.added),
        "updated": len(report.updated),
        "unchanged": len(report.unchanged),
        "chunks_written": report.chunks_written,
        "failed": report.failed[:20],
    }


def build_index(
    dataset: EvalDataset,
    config: dict[str, Any] | None = None,
    *,
    progress: bool = True,
    rebuild: bool = False,
) -> tuple[Any, Path, bool]:
    """Open the dataset's evaluation index, building it first when missing or stale.

    Returns (index, folder, reused). An interrupted build is resumed: documents already stored with
    the same content hash are skipped by the index.
    """
    if not dataset.corpus:
        raise InputError(f"dataset {dataset.name!r} has no corpus to index; evaluate it against an index_dir")
    index_cfg = dict(config or {})
    path = index_dir_for(dataset, index_cfg)
    marker = path / MARKER
    fingerprint = dataset.corpus_fingerprint()
    if not rebuild and marker.is_file():
        try:
            info = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        if info.get("fingerprint") == fingerprint and info.get("complete"):
            index = _open_index(path, index_cfg)
            backfill = getattr(index, "backfill_sentences", None)
            if callable(backfill):  # built by an older version: the reranker's sentence vectors, once
                backfill()
            return index, path, True
    if rebuild and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    index = _open_index(path, index_cfg)
    started = time.perf_counter()
    ingest = _ingest(index, _documents(dataset), index_cfg, progress)
    info = {
        "dataset": dataset.name,
        "fingerprint": fingerprint,
        "documents": len(dataset.corpus),
        "build_settings": {k: index_cfg[k] for k in BUILD_KEYS if k in index_cfg},
        "build_seconds": round(time.perf_counter() - started, 2),
        "ingest": ingest,
        "complete": True,
    }
    marker.write_text(json.dumps(info, indent=2))
    return index, path, False


def index_stats(index: Any) -> dict[str, Any]:
    """The index's stats() for a results file ({} when it has none)."""
    try:
        return dict(index.stats())
    except (AttributeError, RagrouteError):
        return {}
