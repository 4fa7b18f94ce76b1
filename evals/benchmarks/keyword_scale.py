"""Keyword search at scale: the in-process rank-bm25 index (tools/bm25.py, what the embedded backend uses)
against Milvus's BM25 full-text search on a `milvus-lite server`, at 100k and 1M chunks.

Chunks are synthetic: `--terms` analyzed tokens each, drawn from the unigram distribution of the BEIR
corpora's analyzed text (tools/analyzer.tokenize, so the vocabulary and its Zipf shape are real). Queries are
real BEIR questions, analyzed the same way. Milvus rows mirror the Milvus backend's chunks collection
(tokens joined by spaces in an analyzed `terms` field, a BM25 function into `sparse`, plus a 384-dim dense
field filled by cycling 16 fixed vectors: embedding a million texts is out of reach here).

Per engine and size: build/insert time, resident memory, query p50/p95 (top 10, one at a time) and the cost
of one upsert: the time from writing one new chunk (with a term nothing else has) until a keyword search
finds it. rank-bm25 marks itself stale on a write and rebuilds everything on the next search, so its upsert
cost grows with the index; Milvus indexes the new row without touching the others.

    python -m ragroute.evals.benchmarks.keyword_scale --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ragroute.evals.benchmarks.load_serve import cpu_seconds, milvus_server, percentile, read_jsonl

RESULTS = Path(__file__).resolve().parents[1] / "results"
DATA = Path(os.environ.get("RAGROUTE_DATA_DIR", "/work/shared/data"))
CORPORA = ("scifact", "hotpotqa", "clapnq")
DIM = 384
BATCH = 5000


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def vocabulary() -> tuple[list[str], np.ndarray]:
    """The analyzed terms of the BEIR corpora and their probabilities."""
    from ragroute.tools.analyzer import tokenize

    counts: Counter[str] = Counter()
    for name in CORPORA:
        for doc in read_jsonl(DATA / name / "corpus.jsonl"):
            counts.update(tokenize(f"{doc.get('title', '')} {doc['text']}"))
    terms = sorted(counts)
    freq = np.asarray([counts[t] for t in terms], dtype=np.float64)
    return terms, freq / freq.sum()


def queries(n: int) -> list[list[str]]:
    """`n` real questions (analyzed), non-empty."""
    from ragroute.tools.analyzer import tokenize

    out = [tokenize(q["text"]) for name in CORPORA for q in read_jsonl(DATA / name / "queries.jsonl")]
    out = [q for q in out if q]
    return out[:: max(1, len(out) // n)][:n]


def chunk_terms(size: int, n_terms: int, probs: np.ndarray, seed: int) -> np.ndarray:
    """A (size, n_terms) array of term indices drawn from `probs`."""
    return np.random.default_rng(seed).choice(len(probs), size=(size, n_terms), p=probs).astype(np.int32)


def timings(fn: Callable[[list[str]], Any], qs: list[list[str]]) -> dict[str, float]:
    """p50/p95/mean ms of `fn` over the queries, one at a time (after 3 warm-up calls)."""
    for q in qs[:3]:
        fn(q)
    ms = []
    for q in qs:
        start = time.perf_counter()
        fn(q)
        ms.append(1000 * (time.perf_counter() - start))
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def bench_rank_bm25(terms: list[str], ids: np.ndarray, qs: list[list[str]], upserts: int) -> dict[str, Any]:
    """tools/bm25.BM25Index: build, memory, query latency, upsert-to-findable."""
    from ragroute.tools.bm25 import BM25Index

    gc.collect()
    before = rss_mb()
    index = BM25Index()
    start, cpu = time.perf_counter(), time.process_time()
    index.add_many((f"c{i}", [terms[t] for t in row]) for i, row in enumerate(ids))
    added = time.perf_counter() - start
    index.search(qs[0], 10)  # the first search builds BM25Okapi and the postings
    built, built_cpu = time.perf_counter() - start, time.process_time() - cpu
    memory = rss_mb() - before
    search = index.search
    query = timings(lambda q: search(q, 10), qs)
    costs, cpu_costs = [], []
    for n in range(upserts):
        token = f"zzupsert{n}"
        start, cpu = time.perf_counter(), time.process_time()
        index.add(f"new{n}", [token, *[terms[t] for t in ids[n]]])
        found = index.search([token], 1)
        costs.append(time.perf_counter() - start)
        cpu_costs.append(time.process_time() - cpu)
        assert found and found[0][0] == f"new{n}", found
    del index
    gc.collect()
    return {
        "engine": "rank-bm25 in process (tools/bm25.BM25Index)",
        "load_s": round(added, 1),
        "build_s": round(built, 1),
        "build_cpu_s": round(built_cpu, 1),
        "memory_mb": round(memory, 1),
        "query": query,
        "upsert_to_findable_s": [round(c, 3) for c in costs],
        "upsert_cpu_s": [round(c, 3) for c in cpu_costs],
    }


def bench_milvus(
    terms: list[str], ids: np.ndarray, qs: list[list[str]], upserts: int, work: str
) -> dict[str, Any]:
    """The same chunks in a milvus-lite server collection with a BM25 function."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    data_dir = os.path.join(work, f"milvus-{len(ids)}")
    server = milvus_server(data_dir, port, os.path.join(work, f"milvus-{len(ids)}.log"))
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}")
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=65535,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        idx = client.prepare_index_params()
        idx.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": 1.5, "bm25_b": 0.75},
        )
        idx.add_index("dense", index_type="AUTOINDEX", metric_type="COSINE")
        client.create_collection("kw", schema=schema, index_params=idx, consistency_level="Strong")
        vectors = np.random.default_rng(0).standard_normal((16, DIM)).astype(np.float32).tolist()
        start, cpu = time.perf_counter(), cpu_seconds(server.proc.pid) + time.process_time()
        for lo in range(0, len(ids), BATCH):
            rows = [
                {"pk": f"c{i}", "terms": " ".join(terms[t] for t in ids[i]), "dense": vectors[i % 16]}
                for i in range(lo, min(lo + BATCH, len(ids)))
            ]
            client.insert("kw", rows)
        inserted = time.perf_counter() - start
        client.flush("kw")
        client.load_collection("kw")

        def search(q: list[str]) -> Any:
            return client.search(
                "kw", data=[" ".join(q)], anns_field="sparse", limit=10, search_params={"metric_type": "BM25"}
            )

        search(qs[0])
        ready = time.perf_counter() - start
        ready_cpu = cpu_seconds(server.proc.pid) + time.process_time() - cpu
        query = timings(search, qs)
        costs, cpu_costs = [], []
        for n in range(upserts):
            token = f"zzupsert{n}"
            row = {
                "pk": f"new{n}",
                "terms": " ".join([token, *[terms[t] for t in ids[n]]]),
                "dense": vectors[0],
            }
            start, cpu = time.perf_counter(), cpu_seconds(server.proc.pid) + time.process_time()
            client.upsert("kw", [row])
            found = search([token])
            while not found[0]:  # Strong consistency should make this the first try; poll to be sure
                found = search([token])
            costs.append(time.perf_counter() - start)
            cpu_costs.append(cpu_seconds(server.proc.pid) + time.process_time() - cpu)
            assert found[0][0].id == f"new{n}", found
        memory = rss_mb(server.proc.pid)
        client.close()
    finally:
        server.stop()
        disk = sum(f.stat().st_size for f in Path(data_dir).rglob("*") if f.is_file())
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "engine": "Milvus BM25 (milvus-lite server, loopback gRPC)",
        "load_s": round(inserted, 1),
        "build_s": round(ready, 1),
        "build_cpu_s": round(ready_cpu, 1),
        "memory_mb": memory,
        "disk_mb": round(disk / 2**20, 1),
        "query": query,
        "upsert_to_findable_s": [round(c, 3) for c in costs],
        "upsert_cpu_s": [round(c, 3) for c in cpu_costs],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every size and engine; returns the JSON-able report."""
    terms, probs = vocabulary()
    qs = queries(args.queries)
    work = tempfile.mkdtemp(prefix="ragroute-kw-")
    results = []
    try:
        for size in args.sizes:
            ids = chunk_terms(size, args.terms, probs, seed=size)
            for engine in args.engines:
                started = time.perf_counter()
                if engine == "bm25":
                    r = bench_rank_bm25(terms, ids, qs, args.upserts)
                else:
                    r = bench_milvus(terms, ids, qs, args.upserts, work)
                r.update(chunks=size, wall_s=round(time.perf_counter() - started, 1))
                results.append(r)
                print(json.dumps(r), flush=True)
            del ids
            gc.collect()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "keyword_scale",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "setup": {
            "vocabulary": f"{len(terms)} analyzed terms of {'+'.join(CORPORA)}, unigram frequencies",
            "terms_per_chunk": args.terms,
            "queries": f"{len(qs)} real questions ({'+'.join(CORPORA)}), analyzed, top 10, one at a time",
            "upserts": args.upserts,
            "milvus_rows": f"terms (BM25 function -> sparse), dense {DIM}-dim cycled from 16 vectors",
        },
        "results": results,
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    s, m = report["setup"], report["machine"]
    lines = [
        "# Keyword search at scale: rank-bm25 in process vs Milvus BM25",
        "",
        f"{report['when']}, {m['cpus']} CPUs shared with other work (1-minute load average at the end "
        f"{m['load_avg_1m_at_end']}). Synthetic chunks of {s['terms_per_chunk']} terms each from "
        f"{s['vocabulary']}; {s['queries']}; Milvus rows: {s['milvus_rows']}. Upsert = write one new chunk, "
        f"then search until it is found ({s['upserts']} tries, median shown).",
        "",
        "| chunks | engine | load s | ready s (CPU s) | memory MB | query p50 ms | query p95 ms "
        "| upsert -> findable s (CPU s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        q = r["query"]
        up = statistics.median(r["upsert_to_findable_s"]) if r["upsert_to_findable_s"] else ""
        if r.get("upsert_cpu_s"):
            up = f"{up} ({round(statistics.median(r['upsert_cpu_s']), 3)})"
        ready = f"{r['build_s']} ({r['build_cpu_s']})" if "build_cpu_s" in r else r["build_s"]
        lines.append(
            f"| {r['chunks']:,} | {r['engine']} | {r['load_s']} | {ready} | {r['memory_mb']} "
            f"| {q['p50_ms']} | {q['p95_ms']} | {up} |"
        )
    for note in report.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: run, write the JSON and Markdown reports."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--engines", nargs="+", choices=["bm25", "milvus"], default=["bm25", "milvus"])
    parser.add_argument("--terms", type=int, default=40, help="analyzed terms per chunk")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--upserts", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    report = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "keyword_scale.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "keyword_scale.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
