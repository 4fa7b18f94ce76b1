"""Graph-mode evals: the whole query graph on every question, scored on answers, citations, abstention,
context, latency and cost, with summaries per route and per node."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ragroute.api import ask as graph_ask
from ragroute.context import Context
from ragroute.evals import metrics as M
from ragroute.evals.config import split_config
from ragroute.evals.datasets import EvalDataset, EvalQuery, load_dataset
from ragroute.evals.eval_index import build_index, index_stats
from ragroute.evals.judge import judge_answer, judge_model
from ragroute.evals.relevance import RelevanceKey, relevance_key
from ragroute.evals.report import (
    GRAPH_METRICS,
    aggregate,
    dataset_info,
    environment_info,
    node_summary,
    progress_bar,
    round_floats,
)
from ragroute.runtime import providers
from ragroute.tools.errors import RagrouteError


class ChunkLookup:
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


def _as_docs(chunk_ids: Iterable[str], lookup: ChunkLookup, key: RelevanceKey) -> list[str]:
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
    lookup: ChunkLookup,
    key: RelevanceKey,
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
    metrics: dict[str, Any] = {k: v for k, v in aggregate(records, names).items() if v is not None}
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
    return {node: node_summary(values[node]) for node in order}


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
    if not {"user_groups", "clearance", "all_access"} & set(graph_cfg):
        # an eval measures the whole corpus (ask's default is public documents only) unless told a scope
        graph_cfg["all_access"] = True
    path: Path | None = None
    reused, owned = None, False
    if index is None:
        if ds.kind == "golden":
            index = providers.index(Context.from_dict(graph_cfg))
        else:
            index, path, reused = build_index(ds, index_cfg, progress=progress, rebuild=rebuild)
            graph_cfg["index_dir"] = str(path)
            owned = True
    else:  # the caller's open index (the graph reads this very object, bound below)
        graph_cfg.setdefault("index_dir", str(getattr(index, "path", "") or "") or None)
        if not graph_cfg["index_dir"]:
            graph_cfg.pop("index_dir")
    if ask is None:
        ask = graph_ask
    price_table = prices if isinstance(prices, dict) else M.load_prices(prices)
    support = M.support_scorer()
    judge_llm = None
    if judge:
        judge_llm = judge_model(judge)
    lookup = ChunkLookup(index)
    key = relevance_key(ds)
    try:
        records = []
        # every run of the graph (the caller's `ask` too) searches this very index, with the caller's
        # other bound objects (a chat model, a reranker) kept
        with providers.using(dataclasses.replace(providers.current() or providers.Providers(), index=index)):
            for q in progress_bar(ds.limited(limit), progress, "graph"):
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
        return round_floats(
            {
                "mode": "graph",
                "dataset": dataset_info(ds, len(records)),
                "config": {"index": index_cfg, "graph": graph_cfg},
                "index": {"path": str(path) if path else None, "reused": reused, "stats": index_stats(index)},
                "metrics": _graph_metrics(records, ks),
                "per_route": _per_route(records),
                "per_node_latency": _per_node(records),
                "records": records,
                "environment": environment_info(),
            }
        )
    finally:
        if owned:
            index.close()
