"""Retrieval-mode evals: hybrid search (plus an optional rerank) scored with ranking metrics per query."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragroute.evals import metrics as M
from ragroute.evals.config import split_config
from ragroute.evals.datasets import EvalDataset, load_dataset
from ragroute.evals.eval_index import build_index, index_stats
from ragroute.evals.relevance import RelevanceKey, doc_ranking, relevance_key
from ragroute.evals.report import (
    aggregate,
    dataset_info,
    environment_info,
    node_summary,
    progress_bar,
    round_floats,
)
from ragroute.runtime import providers
from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.index import HybridIndex

DEFAULT_KS = (1, 3, 5, 10, 100)


def retrieve_documents(
    index: Any,
    query: str,
    depth: int,
    *,
    key: RelevanceKey = lambda d, m: d,
    reranker: Any = None,
    rerank_depth: int = 30,
    candidate_k: int | None = None,
    weights: dict[str, float] | None = None,
    filters: dict[str, Any] | None = None,
) -> list[str]:
    """Ranked unique document ids for a query: hybrid search (widened until `depth` documents or the
    index runs out, since several chunks can share a document), then an optional rerank of the top
    `rerank_depth` chunks, the rest kept in fused order."""
    n = depth * 2
    while True:
        kw: dict[str, Any] = {"filters": filters, "weights": weights}
        if candidate_k:
            kw["candidate_k"] = max(candidate_k, n)
        hits = index.search(query, k=n, **kw)
        ranked = doc_ranking(hits, key)
        if len(ranked) >= depth or len(hits) < n or n >= depth * 8:
            break
        n *= 2
    if reranker is not None and hits:
        head = [h.to_dict() if hasattr(h, "to_dict") else h for h in hits[:rerank_depth]]
        hits = [*reranker.rerank(query, head), *hits[rerank_depth:]]
        ranked = doc_ranking(hits, key)
    return ranked


def run_retrieval_eval(
    dataset: EvalDataset | str,
    index: Any = None,
    *,
    config: dict[str, Any] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    limit: int | None = None,
    rerank: bool | str = False,
    progress: bool = True,
    rebuild: bool = False,
) -> dict[str, Any]:
    """Evaluate hybrid retrieval (+ optional rerank) on a dataset's judged queries.

    `index`: an open index, or None to build/reuse the dataset's evaluation index from `config`.
    `rerank`: False, True (the graph's default reranker, Context.reranker "auto"), or a reranker name.
    """
    ds = load_dataset(dataset) if isinstance(dataset, str | Path) else dataset
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ConfigError(f"k values must be positive integers, got {list(ks)!r}")
    index_cfg, search_cfg, _ = split_config(config, "retrieval")
    reused, path, owned = None, None, False
    if index is None:
        if ds.kind == "golden":
            index = HybridIndex.open(index_cfg.get("index_dir"))
        else:
            index, path, reused = build_index(ds, index_cfg, progress=progress, rebuild=rebuild)
        owned = True
    name = search_cfg.get("reranker") or (("auto" if rerank is True else rerank) if rerank else None)
    reranker_obj, reranker_name = None, None
    if name and name != "none":
        reranker_name = providers.resolve_reranker_name(name)
        reranker_obj = providers.reranker(name)
    key = relevance_key(ds)
    depth = max(ks)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be a positive integer, got {limit!r}")
    queries = [q for q in ds.queries if ds.qrels.get(q.qid)][:limit]
    try:
        records = []
        for q in progress_bar(queries, progress, "retrieval"):
            start = time.perf_counter()
            ranked = retrieve_documents(
                index,
                q.text,
                depth,
                key=key,
                reranker=reranker_obj,
                rerank_depth=int(search_cfg.get("rerank_depth", 30)),
                candidate_k=search_cfg.get("candidate_k"),
                weights=search_cfg.get("weights"),
                filters=search_cfg.get("filters"),
            )
            ms = (time.perf_counter() - start) * 1000
            records.append(
                {
                    "qid": q.qid,
                    "query": q.text,
                    "ranked": ranked[: max(10, min(depth, 20))],
                    "gold": sorted(d for d, g in ds.qrels[q.qid].items() if g > 0),
                    "latency_ms": ms,
                    "metrics": M.ranking_metrics(ranked, ds.qrels[q.qid], ks),
                }
            )
        names = [f"{n}@{k}" for k in ks for n in M.RANKING_METRICS]
        metrics: dict[str, Any] = {
            **aggregate(records, names),
            **M.latency_summary(r["latency_ms"] for r in records),
        }
        metrics["queries"] = len(records)
        return round_floats(
            {
                "mode": "retrieval",
                "dataset": dataset_info(ds, len(records)),
                "config": {
                    "index": index_cfg,
                    "search": search_cfg,
                    "reranker": reranker_name,
                    "ks": list(ks),
                },
                "index": {"path": str(path) if path else None, "reused": reused, "stats": index_stats(index)},
                "metrics": metrics,
                "per_route": {},
                "per_node_latency": {"retrieval": node_summary([r["latency_ms"] for r in records])},
                "records": records,
                "environment": environment_info(),
            }
        )
    finally:
        if owned:
            index.close()
