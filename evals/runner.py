"""Evaluation runs: retrieval alone (hybrid index, optional rerank) or the whole query graph.

Both return one JSON-ready results dict: `metrics` (flat, keyed like "ndcg@10" or "latency_p95_ms"),
`per_route`, `per_node_latency`, `records` (one per query), plus what was run (`dataset`, `config`,
`index`, `environment`). A BEIR corpus is indexed once into a folder keyed by dataset, corpus contents
and index settings, and reused while those are unchanged.

The pieces live in their own modules: config (settings), eval_index (building and reusing eval
indexes), retrieval_eval, graph_eval, report (summaries, run info) and regression (baseline checks).
This module gathers the names the CLI and the benchmarks use.
"""

from __future__ import annotations

from ragroute.evals.config import SEARCH_KEYS, parse_config, split_config
from ragroute.evals.eval_index import BUILD_KEYS, MARKER, build_index, eval_index_root, index_dir_for
from ragroute.evals.graph_eval import ChunkLookup, run_graph_eval, score_graph_output
from ragroute.evals.regression import QUALITY_KEYS, QUALITY_PREFIXES, compare_to_baseline, is_quality_metric
from ragroute.evals.report import GRAPH_METRICS, environment_info
from ragroute.evals.retrieval_eval import DEFAULT_KS, retrieve_documents, run_retrieval_eval

__all__ = [
    "BUILD_KEYS",
    "DEFAULT_KS",
    "GRAPH_METRICS",
    "MARKER",
    "QUALITY_KEYS",
    "QUALITY_PREFIXES",
    "SEARCH_KEYS",
    "ChunkLookup",
    "build_index",
    "compare_to_baseline",
    "environment_info",
    "eval_index_root",
    "index_dir_for",
    "is_quality_metric",
    "parse_config",
    "retrieve_documents",
    "run_graph_eval",
    "run_retrieval_eval",
    "score_graph_output",
    "split_config",
]
