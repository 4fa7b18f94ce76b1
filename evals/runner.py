"""Evaluation runs: retrieval alone (hybrid index, optional rerank) or the whole query graph.

Both return one JSON-ready results dict: `metrics` (flat, keyed like "ndcg@10" or "latency_p95_ms"),
`per_route`, `per_node_latency`, `records` (one per query), plus what was run (`dataset`, `config`,
`index`, `environment`). A BEIR corpus is indexed once into a folder keyed by dataset, corpus contents
and index settings, and reused while those are unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragroute.evals import metrics as M
from ragroute.evals.datasets import EvalDataset, EvalQuery, load_dataset
from ragroute.tools.errors import ConfigError, InputError, RagrouteError

DEFAULT_KS = (1, 3, 5, 10, 100)
MARKER = "ragroute_eval_index.json"
# settings that change what is stored in the index (a different value means a different index folder)
BUILD_KEYS = ("embedding", "child_tokens", "parent_tokens", "collection")
# settings of one retrieval-mode search
SEARCH_KEYS = ("reranker", "candidate_k", "rerank_depth", "weights", "filters")
# quality metrics where higher is better (regression checks compare these)
QUALITY_PREFIXES = ("ndcg@", "recall@", "hit@", "mrr@", "precision@")
# per-query graph metrics averaged over a run; higher is better for all of them
GRAPH_METRICS = (
    "judge_correct",
    "answer_f1",
    "answer_recall",
    "exact_match",
    "faithfulness",
    "citation_precision",
    "citation_recall",
    "citation_accuracy",
    "context_recall",
    "supporting_in_context",
    "supporting_retrieved",
    "answered_with_gold_citation",
    "cited",
)
QUALITY_KEYS = (*GRAPH_METRICS, "abstain_accuracy", "answer_rate", "decision_accuracy")


# --------------------------------------------------------------------------------------------- config


def _index_config_fields() -> set[str]:
    try:
        from ragroute.tools.index import IndexConfig
    except ImportError:
        return {"path", "embedding", "rrf_k", "weights", "doc_type_weights", "collection", "chroma_mode"}
    return {f.name for f in dataclasses.fields(IndexConfig)}


def _context_fields() -> set[str]:
    try:
        from ragroute.context import Context
    except ImportError:
        return set()
    return Context.field_names()


def split_config(
    config: dict[str, Any] | None, mode: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split one user config into (index settings, search settings, graph context overrides).

    Index settings are ragroute.tools.index.IndexConfig fields, chunk sizes, `eval_index_dir` (where the indexes
    built from BEIR corpora live) and `index_dir` (an existing index, for golden sets); search settings
    are reranker/candidate_k/rerank_depth/weights/filters; graph overrides are ragroute.context.Context
    fields. Unknown keys are a ConfigError listing the options.
    """
    config = dict(config or {})
    index_fields = _index_config_fields() | {"child_tokens", "parent_tokens", "index_dir", "eval_index_dir"}
    context_fields = _context_fields() if mode == "graph" else set()
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


# --------------------------------------------------------------------------------------------- index


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


def _documents(dataset: EvalDataset) -> list[Any]:
    from ragroute.tools.types import Document

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
    from ragroute.tools.index import HybridIndex

    open_kw = {k: v for k, v in index_cfg.items() if k in _index_config_fields() and k != "path"}
    return HybridIndex.open(str(path), **open_kw)


def _ingest(index: Any, docs: list[Any], index_cfg: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Add documents through the ingestion pipeline; returns its report summary."""
    from ragroute.tools.ingest import ingest_documents

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
        import shutil

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


def _stats(index: Any) -> dict[str, Any]:
    try:
        return dict(index.stats())
    except (AttributeError, RagrouteError):
        return {}


# --------------------------------------------------------------------------------------------- helpers


def _progress(items: Sequence[Any], enabled: bool, desc: str) -> Iterable[Any]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="q" if desc != "indexing" else "doc", leave=False, dynamic_ncols=True)


def environment_info() -> dict[str, Any]:
    """When and where a run happened (written into every results file)."""
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }


def _relevance_key(dataset: EvalDataset) -> Callable[[str, dict[str, Any]], str]:
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


def _doc_ranking(hits: Sequence[Any], key: Callable[[str, dict[str, Any]], str]) -> list[str]:
    ranked = []
    for hit in hits:
        _, doc_id, meta = _hit_fields(hit)
        ranked.append(key(doc_id, meta))
    return M.dedupe_ranking(ranked)


def _aggregate(records: list[dict[str, Any]], names: Iterable[str]) -> dict[str, float | None]:
    return {name: M.mean(r["metrics"].get(name) for r in records) for name in names}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------- retrieval


def retrieve_documents(
    index: Any,
    query: str,
    depth: int,
    *,
    key: Callable[[str, dict[str, Any]], str] = lambda d, m: d,
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
        ranked = _doc_ranking(hits, key)
        if len(ranked) >= depth or len(hits) < n or n >= depth * 8:
            break
        n *= 2
    if reranker is not None and hits:
        head = [h.to_dict() if hasattr(h, "to_dict") else h for h in hits[:rerank_depth]]
        hits = [*reranker.rerank(query, head), *hits[rerank_depth:]]
        ranked = _doc_ranking(hits, key)
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
            from ragroute.tools.index import HybridIndex

            index = HybridIndex.open(index_cfg.get("index_dir"))
        else:
            index, path, reused = build_index(ds, index_cfg, progress=progress, rebuild=rebuild)
        owned = True
    name = search_cfg.get("reranker") or (("auto" if rerank is True else rerank) if rerank else None)
    reranker_obj, reranker_name = None, None
    if name and name != "none":
        from ragroute.runtime import providers

        reranker_name = providers.resolve_reranker_name(name)
        reranker_obj = providers.reranker(name)
    key = _relevance_key(ds)
    depth = max(ks)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be a positive integer, got {limit!r}")
    queries = [q for q in ds.queries if ds.qrels.get(q.qid)][:limit]
    try:
        records = []
        for q in _progress(queries, progress, "retrieval"):
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
            **_aggregate(records, names),
            **M.latency_summary(r["latency_ms"] for r in records),
        }
        metrics["queries"] = len(records)
        return _round(
            {
                "mode": "retrieval",
                "dataset": _dataset_info(ds, len(records)),
                "config": {
                    "index": index_cfg,
                    "search": search_cfg,
                    "reranker": reranker_name,
                    "ks": list(ks),
                },
                "index": {"path": str(path) if path else None, "reused": reused, "stats": _stats(index)},
                "metrics": metrics,
                "per_route": {},
                "per_node_latency": {"retrieval": _node_summary([r["latency_ms"] for r in records])},
                "records": records,
                "environment": environment_info(),
            }
        )
    finally:
        if owned:
            index.close()


def _dataset_info(ds: EvalDataset, n: int) -> dict[str, Any]:
    return {"name": ds.name, "kind": ds.kind, "path": ds.path, "split": ds.split, "queries": n}


def _node_summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50_ms": M.percentile(values, 50),
        "p95_ms": M.percentile(values, 95),
        "p99_ms": M.percentile(values, 99),
        "mean_ms": M.mean(values),
        "calls": len(values),
    }


# --------------------------------------------------------------------------------------------- graph


class _ChunkLookup:
    """chunk id -> (doc id, metadata, passage text the generator saw), cached."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self._cache: dict[str, tuple[str | None, dict[str, Any], str]] = {}

    def get(self, chunk_id: str) -> tuple[str | None, dict[str, Any], str]:
        if chunk_id not in self._cache:
            chunk = self.index.get_chunk(chunk_id) if self.index is not None else None
            if chunk is None:
                self._cache[chunk_id] = (None, {}, "")
            else:
                text = chunk.text
                parent = self.index.get_parent(chunk.parent_id) if chunk.parent_id else None
                if parent is not None and parent.text:
                    text = parent.text
                self._cache[chunk_id] = (chunk.doc_id, dict(chunk.metadata or {}), text)
        return self._cache[chunk_id]


def _as_docs(
    chunk_ids: Iterable[str], lookup: _ChunkLookup, key: Callable[[str, dict[str, Any]], str]
) -> list[str]:
    out = []
    for cid in chunk_ids or []:
        doc_id, meta, _ = lookup.get(str(cid))
        if doc_id is not None:
            out.append(key(doc_id, meta))
    return M.dedupe_ranking(out)


def score_graph_output(
    q: EvalQuery,
    out: dict[str, Any],
    qrels: dict[str, int],
    lookup: _ChunkLookup,
    key: Callable[[str, dict[str, Any]], str],
    *,
    prices: dict[str, dict[str, float]],
    support: Callable[[str, str], float],
    ks: Sequence[int] = (5, 10),
) -> dict[str, Any]:
    """Per-query record with all generation, citation, context and cost metrics for one graph output."""
    answer = str(out.get("answer") or "")
    abstained = M.is_idk(answer, out.get("abstained"))
    citations = list(out.get("citations") or [])
    cited_docs = []
    passages: dict[int, str] = {}
    for c in citations:
        doc_id, meta, text = lookup.get(str(c.get("chunk_id", "")))
        cited_docs.append(key(doc_id or str(c.get("doc_id", "")), meta or c))
        if "n" in c:
            passages[int(c["n"])] = text or str(c.get("quote", ""))
    retrieved = _as_docs(out.get("retrieved") or [], lookup, key)
    context = _as_docs(out.get("contexts") or [], lookup, key)
    gold = list(q.gold_doc_ids)
    m: dict[str, Any] = {}
    if q.answers and q.answerable is not False:
        words = M.strip_citations(answer) if not abstained else ""
        m["answer_f1"] = M.token_f1(words, q.answers)
        m["answer_recall"] = M.token_recall(words, q.answers)
        m["exact_match"] = M.exact_match(words, q.answers)
    if not abstained:
        faith = out.get("faithfulness")
        m["faithfulness"] = float(faith) if faith is not None else None
        m["citation_accuracy"] = M.citation_accuracy(answer, passages, support=support)
        m["cited"] = 1.0 if citations else 0.0
    if gold:
        p, r = M.citation_precision_recall(cited_docs, gold)
        m["citation_precision"], m["citation_recall"] = (p, r) if not abstained else (None, 0.0)
        m["context_recall"] = len(set(gold) & set(context)) / len(set(gold))
        m["supporting_in_context"] = M.all_found(context, gold)
        m["supporting_retrieved"] = M.all_found(retrieved, gold)
        if qrels:
            m.update(M.ranking_metrics(retrieved, qrels, ks))
        if q.answerable is not False:
            # answered, and at least one citation points at a gold passage
            m["answered_with_gold_citation"] = 1.0 if (not abstained and set(cited_docs) & set(gold)) else 0.0
    usage = dict(out.get("usage") or {})
    cost = M.query_cost(out.get("generator"), usage, prices)
    timings = {k: float(v) for k, v in (out.get("timings") or {}).items() if isinstance(v, int | float)}
    cache_state = (out.get("cache") or {}).get("response")  # "hit" | "miss" | "off"
    cache_hit = None if cache_state in (None, "off") else cache_state == "hit"
    return {
        "qid": q.qid,
        "question": q.text,
        "answerable": q.answerable,
        "route": out.get("route"),
        "k": out.get("k"),
        "abstained": abstained,
        "answer": answer,
        "gold_answers": q.answers[:3],
        "gold": gold,
        "cited_docs": cited_docs,
        "context_docs": context,
        "context_chunks": len(out.get("contexts") or []),
        "retrieved_docs": retrieved[:20],
        "generator": out.get("generator"),
        "confidence": out.get("confidence"),
        "degradations": list(out.get("degradations") or []),
        "timings": timings,
        "usage": usage,
        "cost_usd": cost,
        "cache_hit": cache_hit,
        "retrieval_cache_hits": (out.get("cache") or {}).get("retrieval_hits"),
        "metrics": m,
    }


def _graph_metrics(records: list[dict[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    names = [*GRAPH_METRICS, *[f"{n}@{k}" for k in ks for n in M.RANKING_METRICS]]
    metrics: dict[str, Any] = {k: v for k, v in _aggregate(records, names).items() if v is not None}
    metrics.update(M.abstention_metrics(records))
    metrics.update(M.latency_summary(r["latency_ms"] for r in records))
    prompt = [float(r["usage"].get("prompt_tokens") or 0) for r in records]
    completion = [float(r["usage"].get("completion_tokens") or 0) for r in records]
    metrics["prompt_tokens_mean"] = M.mean(prompt)
    metrics["completion_tokens_mean"] = M.mean(completion)
    costs = [r["cost_usd"] for r in records]
    metrics["cost_per_query_usd"] = M.mean(costs)
    metrics["cost_total_usd"] = (
        sum(c for c in costs if c is not None) if any(c is not None for c in costs) else None
    )
    metrics["cache_hit_rate"] = M.mean(r["cache_hit"] for r in records)
    metrics["errors"] = sum(1 for r in records if r.get("error"))
    metrics["queries"] = len(records)
    return metrics


def _per_route(records: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[str(r.get("route"))].append(r)
    out = {}
    for route, rows in sorted(groups.items()):
        out[route] = {
            "queries": len(rows),
            "share": len(rows) / len(records),
            "answer_f1": M.mean(r["metrics"].get("answer_f1") for r in rows),
            "faithfulness": M.mean(r["metrics"].get("faithfulness") for r in rows),
            "context_recall": M.mean(r["metrics"].get("context_recall") for r in rows),
            "citation_precision": M.mean(r["metrics"].get("citation_precision") for r in rows),
            "abstained": M.mean(r["abstained"] for r in rows),
            "latency_p50_ms": M.percentile([r["latency_ms"] for r in rows], 50),
            "latency_p95_ms": M.percentile([r["latency_ms"] for r in rows], 95),
        }
    return out


def _per_node(records: list[dict[str, Any]]) -> dict[str, Any]:
    values: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for node, ms in r["timings"].items():
            values[node].append(ms)
    order = sorted(values, key=lambda n: (n == "total", -(M.mean(values[n]) or 0)))
    return {node: _node_summary(values[node]) for node in order}


def run_graph_eval(
    dataset: EvalDataset | str,
    overrides: dict[str, Any] | None = None,
    *,
    limit: int | None = None,
    index: Any = None,
    ks: Sequence[int] = (5, 10),
    prices: dict[str, dict[str, float]] | str | None = None,
    progress: bool = True,
    ask: Callable[..., dict[str, Any]] | None = None,
    rebuild: bool = False,
    judge: str | None = None,
) -> dict[str, Any]:
    """Run the whole query graph on every question and score answers, citations, abstention and latency.

    `overrides`: a config dict; Context fields go to the graph (llm, reranker, route, ...), index
    settings pick/build the evaluation index. A BEIR dataset is indexed into its eval index, which the
    graph then reads (Context.index_dir); a golden set uses `index_dir` from the config or the default.
    `judge`: a chat model spec ("provider:model") that grades each answer against the gold answers
    (metric "judge_correct"); None skips the LLM judge (the offline default).
    """
    ds = load_dataset(dataset) if isinstance(dataset, str | Path) else dataset
    index_cfg, _, graph_cfg = split_config(overrides, "graph")
    from ragroute.runtime import providers

    path: Path | None = None
    reused, owned = None, False
    if index is None:
        if ds.kind == "golden":
            from ragroute.context import Context

            index = providers.index(Context.from_dict(graph_cfg))
        else:
            index, path, reused = build_index(ds, index_cfg, progress=progress, rebuild=rebuild)
            graph_cfg["index_dir"] = str(path)
            providers.register_index(str(path), index)
            owned = True
    else:  # the caller's open index: make the graph read this very object
        graph_cfg.setdefault("index_dir", str(getattr(index, "path", "") or "") or None)
        if graph_cfg["index_dir"]:
            providers.register_index(str(graph_cfg["index_dir"]), index)
        else:
            graph_cfg.pop("index_dir")
    if ask is None:
        from ragroute.api import ask as graph_ask

        ask = graph_ask
    price_table = prices if isinstance(prices, dict) else M.load_prices(prices)
    support = M.support_scorer()
    judge_llm = None
    if judge:
        from ragroute.evals.judge import judge_model

        judge_llm = judge_model(judge)
    lookup = _ChunkLookup(index)
    key = _relevance_key(ds)
    try:
        records = []
        for q in _progress(ds.limited(limit), progress, "graph"):
            start = time.perf_counter()
            try:
                out = ask(q.text, **graph_cfg)
                error = None
            except RagrouteError as exc:  # a provider failure in one query is recorded, the run goes on
                out, error = {"answer": "", "abstained": True, "degradations": [str(exc)]}, str(exc)
            ms = (time.perf_counter() - start) * 1000
            record = score_graph_output(
                q, out, ds.qrels.get(q.qid, {}), lookup, key, prices=price_table, support=support, ks=ks
            )
            record["latency_ms"] = ms
            record["graph_total_ms"] = record["timings"].get("total")
            if judge_llm is not None and q.answers and q.answerable is not False:
                from ragroute.evals.judge import judge_answer

                try:
                    verdict = judge_answer(
                        judge_llm, q.text, q.answers, "" if record["abstained"] else record["answer"]
                    )
                    record["metrics"]["judge_correct"] = verdict
                except RagrouteError as exc:  # the judge failing is recorded, the run goes on
                    record["judge_error"] = str(exc)
            if error:
                record["error"] = error
            records.append(record)
        return _round(
            {
                "mode": "graph",
                "dataset": _dataset_info(ds, len(records)),
                "config": {"index": index_cfg, "graph": graph_cfg},
                "index": {"path": str(path) if path else None, "reused": reused, "stats": _stats(index)},
                "metrics": _graph_metrics(records, ks),
                "per_route": _per_route(records),
                "per_node_latency": _per_node(records),
                "records": records,
                "environment": environment_info(),
            }
        )
    finally:
        if owned:
            providers.forget_index(str(path))
            index.close()


# --------------------------------------------------------------------------------------------- regression


def is_quality_metric(name: str) -> bool:
    """True for metrics where higher is better (the ones a regression check guards)."""
    return name.startswith(QUALITY_PREFIXES) or name in QUALITY_KEYS


def compare_to_baseline(
    current: dict[str, Any], baseline: dict[str, Any], max_drop: float = 0.02
) -> list[dict[str, Any]]:
    """Quality metrics that dropped by more than `max_drop` (absolute) versus a baseline.

    Both arguments may be full results dicts (with "metrics") or flat metric dicts. Metrics missing
    on either side are skipped.
    """
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be >= 0, got {max_drop!r}")
    cur = current.get("metrics", current)
    base = baseline.get("metrics", baseline)
    drops = []
    for name, old in sorted(base.items()):
        new = cur.get(name)
        if (
            not is_quality_metric(name)
            or not isinstance(old, int | float)
            or not isinstance(new, int | float)
        ):
            continue
        if old - new > max_drop + 1e-12:
            drops.append({"metric": name, "baseline": old, "current": new, "drop": round(old - new, 6)})
    return drops
