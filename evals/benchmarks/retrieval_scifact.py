"""Retrieval benchmark on BEIR SciFact: BM25-only vs dense-only vs hybrid (RRF), ingest time and latency.

Every abstract (title + text) is ingested as one chunk through `HybridIndex.upsert_documents`, the 809 train
claims with qrels are searched on each path, and nDCG@10, Recall@10, Recall@100 and hit@5 are computed with
`ragroute.evals.metrics`. Hybrid search latency (k=10, default candidate_k, no rerank) is timed per query.

`--sweep` also re-fuses the cached per-path lists for a few general rrf_k / weight settings, on a *different*
query set (scifact_dev's test claims by default) so the defaults are not tuned on the reported queries.

`--backend milvus` builds the index in a Milvus Lite file instead (or `--index LOCATION`: any folder or
Milvus URL, e.g. a `milvus-lite server` at milvus://127.0.0.1:19530/scifact; give a fresh one) and compares
its numbers with the embedded backend's results file.

Run: ``.venv/bin/python -m ragroute.evals.benchmarks.retrieval_scifact [--sweep] [--limit N] [--backend B]``
Writes evals/results/retrieval_scifact.json and .md (retrieval_scifact_milvus.* for a Milvus index).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ragroute.evals.datasets import resolve_dataset
from ragroute.evals.metrics import hit_at_k, ndcg_at_k, recall_at_k
from ragroute.tools.hybrid import rrf_fuse
from ragroute.tools.index import HybridIndex, IndexConfig
from ragroute.tools.index.config import is_milvus
from ragroute.tools.types import Chunk

RESULTS = Path(__file__).resolve().parents[1] / "results"
DEPTH = 100


def load_beir(
    root: Path, qrels_name: str
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, dict[str, int]]]:
    """Corpus rows, query texts and qrels of a BEIR-layout directory."""
    corpus = [json.loads(line) for line in (root / "corpus.jsonl").open(encoding="utf-8")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (root / "queries.jsonl").open(encoding="utf-8"))}
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / qrels_name).read_text().splitlines()[1:]:
        qid, did, rel = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(rel)
    return corpus, queries, {q: r for q, r in qrels.items() if q in queries}


def ingest(index: HybridIndex, corpus: list[dict[str, Any]], batch_size: int = 256) -> tuple[float, float]:
    """Ingest one chunk per abstract; returns seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(corpus), batch_size):
        batch: list[tuple[Any, ...]] = []
        for row in corpus[start : start + batch_size]:
            doc_id = str(row["_id"])
            chunk = Chunk(
                chunk_id=f"{doc_id}::0", doc_id=doc_id, text=row["text"], metadata={"title": row["title"]}
            )
            batch.append(
                (doc_id, [chunk], [], f"h-{doc_id}", {"title": row.get("title", ""), "source": "scifact"})
            )
        index.upsert_documents(batch)
    index.flush()
    return time.perf_counter() - t0, time.process_time() - c0


def metrics(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100, hit@5 over the queries of `runs`."""
    out = {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 0.0, "hit@5": 0.0}
    for qid, ranked in runs.items():
        q = qrels[qid]
        out["ndcg@10"] += ndcg_at_k(ranked, q, 10)
        out["recall@10"] += recall_at_k(ranked, q, 10)
        out["recall@100"] += recall_at_k(ranked, q, 100)
        out["hit@5"] += hit_at_k(ranked, q, 5)
    n = max(len(runs), 1)
    return {k: round(v / n, 4) for k, v in out.items()}


def path_lists(index: HybridIndex, queries: dict[str, str], qids: list[str]) -> dict[str, dict[str, list]]:
    """Per-query (chunk_id, score) lists of depth DEPTH for each single path."""
    dense, bm25 = {}, {}
    for qid in qids:
        dense[qid] = [(h.chunk_id, h.score) for h in index.dense_search(queries[qid], k=DEPTH)]
        bm25[qid] = [(h.chunk_id, h.score) for h in index.keyword_search(queries[qid], k=DEPTH)]
    return {"dense": dense, "bm25": bm25}


def doc_of(chunk_id: str) -> str:
    return chunk_id.split("::", 1)[0]


def fused_runs(
    lists: dict[str, dict[str, list]], rrf_k: int, weights: dict[str, float]
) -> dict[str, list[str]]:
    """Fuse cached lists exactly as HybridIndex.search does (no doc-type leans in SciFact)."""
    out = {}
    for qid in lists["dense"]:
        fused = rrf_fuse(
            {"dense": lists["dense"][qid], "bm25": lists["bm25"][qid]}, rrf_k=rrf_k, weights=weights
        )
        out[qid] = [doc_of(f.chunk_id) for f in fused[:DEPTH]]
    return out


def sweep(lists: dict[str, dict[str, list]], qrels: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """nDCG@10 of a small grid of general fusion settings on cached lists."""
    rows = []
    for rrf_k in (10, 30, 60, 100):
        for wd, wb in ((1.0, 1.0), (1.0, 0.7), (0.7, 1.0), (1.0, 0.5)):
            m = metrics(fused_runs(lists, rrf_k, {"dense": wd, "bm25": wb}), qrels)
            rows.append({"rrf_k": rrf_k, "dense": wd, "bm25": wb, **m})
    return sorted(rows, key=lambda r: -r["ndcg@10"])


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns the result dict."""
    corpus, queries, qrels = load_beir(resolve_dataset("scifact"), "train.tsv")
    qids = sorted(qrels)[: args.limit] if args.limit else sorted(qrels)
    result: dict[str, Any] = {
        "dataset": "scifact (BEIR), qrels/train.tsv",
        "documents": len(corpus),
        "queries": len(qids),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "2 shared CPU cores",
        },
    }
    with tempfile.TemporaryDirectory(prefix="scifact-index-") as tmp:
        index = HybridIndex(IndexConfig(path=location(args, tmp)))
        try:
            load_before = os.getloadavg()[0]
            wall, cpu = ingest(index, corpus)
            result["ingest_s"] = round(wall, 1)
            result["ingest_cpu_s"] = round(cpu, 1)
            result["load_avg_1m"] = {
                "before_ingest": round(load_before, 1),
                "after_ingest": round(os.getloadavg()[0], 1),
            }
            result["ingest_docs_per_s"] = round(len(corpus) / result["ingest_s"], 1)
            result["index_stats"] = {k: v for k, v in index.stats().items() if k != "path"}
            cfg = index.config
            result["config"] = {
                "rrf_k": cfg.rrf_k,
                "weights": cfg.weights,
                "candidate_k": cfg.candidate_k,
                "embedding": cfg.embedding,
                "embed_precision": getattr(index.embedder, "precision", "n/a"),
                "analyzer": index.analyzer.signature,
            }
            lists = path_lists(index, queries, qids)
            runs = {
                name: {q: [doc_of(c) for c, _ in lst] for q, lst in lists[name].items()} for name in lists
            }
            hybrid = {}
            for qid in qids:
                hits = index.search(queries[qid], k=DEPTH, candidate_k=DEPTH)
                hybrid[qid] = [doc_of(h.chunk_id) for h in hits]
            result["metrics"] = {
                "bm25": metrics(runs["bm25"], qrels),
                "dense": metrics(runs["dense"], qrels),
                "hybrid": metrics(hybrid, qrels),
            }
            # latency: hybrid, k=10, default candidate_k, no rerank; one warm-up pass over 20 queries
            for qid in qids[:20]:
                index.search(queries[qid], k=10)
            # every timed query is embedded afresh: the metric passes above filled the index's query cache
            index._query_vectors.clear()
            lat, cpu_lat = [], []
            for qid in qids:
                t0, c0 = time.perf_counter(), time.process_time()
                index.search(queries[qid], k=10)
                lat.append((time.perf_counter() - t0) * 1000)
                cpu_lat.append((time.process_time() - c0) * 1000)
            result["latency_ms"] = {
                "hybrid_k10": {
                    "p50": round(statistics.median(lat), 1),
                    "p95": round(percentile(lat, 95), 1),
                    "mean": round(statistics.mean(lat), 1),
                    "n": len(lat),
                },
                "hybrid_k10_cpu": {
                    "p50": round(statistics.median(cpu_lat), 1),
                    "p95": round(percentile(cpu_lat, 95), 1),
                },
                "load_avg_1m_after": round(os.getloadavg()[0], 1),
            }
        finally:
            index.close()
    if args.sweep:
        dev_corpus, dev_queries, dev_qrels = load_beir(resolve_dataset("scifact_dev"), "test.tsv")
        with tempfile.TemporaryDirectory(prefix="scifact-dev-") as tmp:
            dev = HybridIndex(IndexConfig(path=tmp))
            try:
                ingest(dev, dev_corpus)
                dev_lists = path_lists(dev, dev_queries, sorted(dev_qrels))
            finally:
                dev.close()
        result["sweep_dev"] = {
            "dataset": "scifact_dev (test claims)",
            "rows": sweep(dev_lists, dev_qrels)[:8],
        }
        result["sweep_train_same_grid"] = sweep(lists, qrels)[:8]
    result["backend"] = {"kind": args.backend, "index": "temporary" if not args.index else args.index}
    if args.backend == "milvus":
        result["parity_vs_embedded"] = parity(result["metrics"], args.baseline)
    m = result["metrics"]
    result["targets"] = {
        "hybrid_ndcg_above_both": m["hybrid"]["ndcg@10"] > max(m["bm25"]["ndcg@10"], m["dense"]["ndcg@10"]),
        "hybrid_p95_le_50ms": result["latency_ms"]["hybrid_k10"]["p95"] <= 50,
        "ingest_le_150s": result["ingest_s"] <= 150,
    }
    return result


def location(args: argparse.Namespace, tmp: str) -> str:
    """Where to build the benchmark index: --index, else a fresh folder or Milvus Lite file under `tmp`."""
    if args.index:
        return str(args.index)
    if args.backend == "milvus":
        os.environ.setdefault("RAGROUTE_STATE_DIR", os.path.join(tmp, "state"))  # no leftovers in ~
        return f"milvus://{tmp}/scifact.db"
    return tmp


def parity(metrics_: dict[str, dict[str, float]], baseline: Path) -> dict[str, Any]:
    """Differences from the embedded backend's results file (nDCG@10 and Recall@100 within 0.01)."""
    if not baseline.exists():
        return {"baseline": str(baseline), "missing": True}
    base = json.loads(baseline.read_text())["metrics"]
    delta = {
        path: {k: round(metrics_[path][k] - base[path][k], 4) for k in metrics_[path]} for path in metrics_
    }
    within = all(abs(delta[p][k]) <= 0.01 for p in delta for k in ("ndcg@10", "recall@100"))
    return {"baseline": baseline.name, "embedded": base, "delta": delta, "within_0.01": within}


def write_markdown(result: dict[str, Any], path: Path) -> None:
    """A short human-readable summary next to the JSON."""
    m = result["metrics"]
    lat = result["latency_ms"]["hybrid_k10"]
    cpu = result["latency_ms"]["hybrid_k10_cpu"]
    load = result["load_avg_1m"]
    lines = [
        "# Retrieval on SciFact (BEIR)",
        "",
        f"{result['documents']} abstracts, {result['queries']} claims (qrels/train.tsv), one chunk each; "
        f"backend: {result['backend']['kind']} ({result['backend']['index']} index).",
        "Produced by `python -m ragroute.evals.benchmarks.retrieval_scifact`.",
        "",
        "| path | nDCG@10 | Recall@10 | Recall@100 | hit@5 |",
        "|---|---|---|---|---|",
    ]
    for name in ("bm25", "dense", "hybrid"):
        r = m[name]
        lines.append(f"| {name} | {r['ndcg@10']} | {r['recall@10']} | {r['recall@100']} | {r['hit@5']} |")
    lines += [
        "",
        f"- ingest: {result['ingest_s']} s wall, {result['ingest_cpu_s']} s CPU "
        f"({result['ingest_docs_per_s']} docs/s, embedding included; 1-min load average "
        f"{load['before_ingest']} -> {load['after_ingest']} on 2 shared cores)",
        f"- hybrid search latency (k=10, no rerank): p50 {lat['p50']} ms, p95 {lat['p95']} ms wall; "
        f"CPU p50 {cpu['p50']} ms, p95 {cpu['p95']} ms",
        f"- config: {json.dumps(result['config'])}",
        f"- targets: {json.dumps(result['targets'])}",
    ]
    if "parity_vs_embedded" in result and "delta" in result["parity_vs_embedded"]:
        par = result["parity_vs_embedded"]
        lines += ["", f"Milvus minus embedded ({par['baseline']}); within 0.01 on nDCG@10 and Recall@100:"]
        lines += [f"{par['within_0.01']}", "", "| path | nDCG@10 | Recall@10 | Recall@100 | hit@5 |"]
        lines.append("|---|---|---|---|---|")
        for name, d in par["delta"].items():
            lines.append(f"| {name} | {d['ndcg@10']} | {d['recall@10']} | {d['recall@100']} | {d['hit@5']} |")
    if "sweep_dev" in result:
        best = result["sweep_dev"]["rows"][0]
        lines.append(
            f"- fusion sweep on scifact_dev (not the reported queries): best rrf_k={best['rrf_k']} "
            f"weights dense={best['dense']} bm25={best['bm25']} nDCG@10={best['ndcg@10']}"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N claims (smoke runs)")
    ap.add_argument("--sweep", action="store_true", help="also sweep rrf_k/weights on scifact_dev")
    ap.add_argument("--backend", choices=("embedded", "milvus"), default="embedded", help="index backend")
    ap.add_argument("--index", default="", help="build the index here (a folder or Milvus URL; a fresh one)")
    ap.add_argument(
        "--baseline", type=Path, default=RESULTS / "retrieval_scifact.json", help=argparse.SUPPRESS
    )
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.index and is_milvus(args.index):
        args.backend = "milvus"
    suffix = "_milvus" if args.backend == "milvus" else ""
    args.out = args.out or str(RESULTS / f"retrieval_scifact{suffix}.json")
    result = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, out.with_suffix(".md"))
    print(json.dumps({k: result[k] for k in ("metrics", "latency_ms", "ingest_s", "targets")}, indent=2))


if __name__ == "__main__":
    main()
