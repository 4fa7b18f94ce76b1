"""Hits in the qrels' id space: which document a hit counts as, and a ranking of unique documents."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ragroute.evals import metrics as M
from ragroute.evals.datasets import EvalDataset

RelevanceKey = Callable[[str, dict[str, Any]], str]


def relevance_key(dataset: EvalDataset) -> RelevanceKey:
    """Map a hit (doc_id, metadata) to the id space of the qrels.

    BEIR qrels use document ids. Golden sets may name a document by id, source path/URL, file name or
    title; the first of those that appears among the expected sources is used.
    """
    if dataset.kind != "golden":
        return lambda doc_id, meta: doc_id
    expected = {s for rel in dataset.qrels.values() for s in rel}

    def key(doc_id: str, meta: dict[str, Any]) -> str:
        source = str(meta.get("source", "") or "")
        for candidate in (doc_id, source, os.path.basename(source), str(meta.get("title", "") or "")):
            if candidate and candidate in expected:
                return candidate
        return doc_id

    return key


def _hit_fields(hit: Any) -> tuple[str, str, dict[str, Any]]:
    if isinstance(hit, dict):
        return str(hit.get("chunk_id", "")), str(hit["doc_id"]), dict(hit.get("metadata") or {})
    return hit.chunk_id, hit.doc_id, dict(hit.metadata or {})


def doc_ranking(hits: Sequence[Any], key: RelevanceKey) -> list[str]:
    """Unique document keys in hit order (SearchHits or hit dicts)."""
    ranked = []
    for hit in hits:
        _, doc_id, meta = _hit_fields(hit)
        ranked.append(key(doc_id, meta))
    return M.dedupe_ranking(ranked)
