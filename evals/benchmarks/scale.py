"""Scale benchmark: ingest throughput, query latency and memory at 10k and 100k chunks.

Chunks are real text. With `--seed-index` (default: the SciFact evaluation index, when it was built by
`ragroute eval scifact` or the side-by-side benchmark) the pieces are that index's ~13k chunk texts and
their stored MiniLM vectors are reused; otherwise SciFact abstracts are split into 3-sentence pieces and
embedded for real. Sizes above the pool repeat pieces with a "[copy n]" suffix that reuses the original's
vector (ReusedEmbedder). So the ingest rate measured here is the STORES' rate (SQLite docstore, Chroma
HNSW, BM25) without the model; the model's own rate is measured separately on 512 pieces, and the
report combines both into an estimated end-to-end rate. Queries are real SciFact claims, embedded for
real at query time.

Also times plain rank-bm25 `BM25Okapi.get_scores` (scores every document for every query) against the
index's keyword path at each size, to show where the default BM25 engine stops scaling.

Run: .venv/bin/python -m ragroute.evals.benchmarks.scale [--sizes 10000,100000] [--queries 100]
Writes evals/results/scale.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragroute.evals import metrics as M
from ragroute.evals.datasets import load_dataset
from ragroute.evals.runner import environment_info, index_dir_for

RESULTS = Path(__file__).resolve().parents[1] / "results"
_COPY = re.compile(r" \[copy \d+\]$")
_WORDS = re.compile(r"\w+")


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ReusedEmbedder:
    """MiniLM for new text; a repeated piece ("... [copy n]") reuses its original's vector (no model call)."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.name = "minilm"  # same vectors as the real model, so the index records the same embedding
        self.cache: dict[str, list[float]] = {}
        self.embedded = 0
        self.reused = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors for texts; originals are embedded once, copies are looked up."""
        keys = [_COPY.sub("", t) for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if todo:
            for key, vec in zip(todo, self.base.embed_documents(todo), strict=True):
                self.cache[key] = vec
            self.embedded += len(todo)
        self.reused += len(keys) - len(todo)
        return [self.cache[k] for k in keys]

    def embed_query(self, text: str) -> list[float]:
        """Real query embedding."""
        return self.base.embed_query(text)


def seed_from_index(path: str, embedder: ReusedEmbedder) -> list[str]:
    """Chunk texts of an existing index, with their stored vectors put in the embedder's cache."""
    from ragroute.tools.index import HybridIndex
    from ragroute.tools.index.embedded import EmbeddedBackend

    index = HybridIndex.open(path)
    try:
        backend = index.backend
        if not isinstance(backend, EmbeddedBackend):  # reads Chroma's stored vectors by their ids
            raise SystemExit("the scale benchmark reuses vectors of an embedded (Chroma) index")
        cid_to_vid = backend.vector_ids()
        texts: dict[str, str] = {}
        for cid in sorted(index.chunk_ids()):
            chunk = index.get_chunk(cid)
            if chunk is not None and cid in cid_to_vid and len(chunk.text) > 40:
                texts[cid_to_vid[cid]] = chunk.text
        vids = list(texts)
        for lo in range(0, len(vids), 2000):
            for vid, vec in index.store.get_embeddings(vids[lo : lo + 2000]).items():
                embedder.cache.setdefault(texts[vid], vec)
    finally:
        index.close()
    return list(dict.fromkeys(t for t in texts.values() if t in embedder.cache))


def embed_rate(base: Any, pieces: list[str], n: int = 512) -> float:
    """Real MiniLM throughput in chunks/s on n pieces."""
    sample = pieces[:n]
    start = time.perf_counter()
    base.embed_documents(sample)
    return len(sample) / (time.perf_counter() - start)


def make_pieces(corpus: dict[str, dict[str, Any]], sentences_per_piece: int = 3) -> list[str]:
    """Distinct real-text pieces: each abstract split into groups of a few sentences."""
    pieces = []
    for doc in corpus.values():
        sents = [s for s in re.split(r"(?<=[.!?])\s+", doc["text"]) if s.strip()]
        for i in range(0, len(sents), sentences_per_piece):
            piece = " ".join(sents[i : i + sentences_per_piece]).strip()
            if len(piece) > 40:
                pieces.append(piece)
    return pieces


def chunk_texts(pieces: list[str], n: int) -> list[str]:
    """n chunk texts: the distinct pieces first, then copies marked "[copy k]"."""
    return [
        pieces[i % len(pieces)] + (f" [copy {i // len(pieces)}]" if i >= len(pieces) else "")
        for i in range(n)
    ]


def ingest(index: Any, texts: list[str], batch: int = 256) -> float:
    """Upsert one single-chunk document per text; returns seconds."""
    from ragroute.tools.types import Chunk

    start = time.perf_counter()
    for lo in range(0, len(texts), batch):
        items: list[tuple[Any, ...]] = []
        for i in range(lo, min(lo + batch, len(texts))):
            doc_id = f"s{i}"
            chunk = Chunk(chunk_id=f"{doc_id}-0", doc_id=doc_id, text=texts[i], metadata={"doc_type": "text"})
            items.append((doc_id, [chunk], [], f"h{i}", {}))
        index.upsert_documents(items)
    return time.perf_counter() - start


def ingest_one(index: Any, doc_id: str, text: str) -> None:
    """Upsert one single-chunk document."""
    from ragroute.tools.types import Chunk

    chunk = Chunk(chunk_id=f"{doc_id}-0", doc_id=doc_id, text=text, metadata={"doc_type": "text"})
    index.upsert_documents([(doc_id, [chunk], [], f"h-{doc_id}", {})])


def time_calls(fn: Any, queries: list[str]) -> dict[str, float | None]:
    """p50/p95/mean milliseconds of fn(query) over the queries."""
    ms = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        ms.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": M.percentile(ms, 50), "p95_ms": M.percentile(ms, 95), "mean_ms": M.mean(ms)}


def dir_mb(path: str) -> float:
    """Disk usage of a folder in MiB."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def run_size(
    n: int, pieces: list[str], queries: list[str], embedder: ReusedEmbedder, workdir: str
) -> dict[str, Any]:
    """Build an index of n chunks and measure ingest, queries, memory and disk."""
    from ragroute.tools.index import HybridIndex
    from rank_bm25 import BM25Okapi

    path = os.path.join(workdir, f"idx{n}")
    texts = chunk_texts(pieces, n)
    rss0 = rss_mb()
    embedded0, reused0 = embedder.embedded, embedder.reused
    index = HybridIndex.open(path, embedder=embedder)
    seconds = ingest(index, texts)
    index.flush()
    row: dict[str, Any] = {
        "chunks": n,
        "ingest_seconds": round(seconds, 1),
        "ingest_chunks_per_s": round(n / seconds, 1),
        "embedded_during_ingest": embedder.embedded - embedded0,
        "embeddings_reused": embedder.reused - reused0,
        "rss_after_ingest_mb": round(rss_mb(), 1),
        "rss_growth_mb": round(rss_mb() - rss0, 1),
    }
    # the first query after a bulk change pays for rebuilding the keyword index (built lazily)
    start = time.perf_counter()
    index.search(queries[0], k=10)
    row["first_query_after_ingest_ms"] = round((time.perf_counter() - start) * 1000, 1)
    # one more document, then a query: the incremental-update cost a live system pays per change
    start = time.perf_counter()
    ingest_one(index, f"s{n}", texts[0] + " [copy 999]")
    row["single_doc_upsert_ms"] = round((time.perf_counter() - start) * 1000, 1)
    start = time.perf_counter()
    index.search(queries[1 % len(queries)], k=10)
    row["first_query_after_single_upsert_ms"] = round((time.perf_counter() - start) * 1000, 1)
    row["hybrid_search_k10"] = time_calls(lambda q: index.search(q, k=10), queries)
    row["keyword_search_k10"] = time_calls(lambda q: index.keyword_search(q, k=10), queries)
    row["dense_search_k10"] = time_calls(lambda q: index.dense_search(q, k=10), queries)
    row["disk_mb"] = round(dir_mb(path), 1)
    index.close()

    start = time.perf_counter()
    plain = BM25Okapi([_WORDS.findall(t.lower()) for t in texts])
    row["plain_rank_bm25_build_s"] = round(time.perf_counter() - start, 1)
    row["plain_rank_bm25_get_scores"] = time_calls(
        lambda q: plain.get_scores(_WORDS.findall(q.lower())), queries
    )
    row["peak_rss_mb"] = round(peak_rss_mb(), 1)
    shutil.rmtree(path, ignore_errors=True)
    return row


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def to_markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown report."""
    env = result["environment"]
    lines = [
        "# Scale: ingest, query latency, memory",
        "",
        f"{env['cpu_count']} shared CPU cores (torch threads: {env.get('torch_threads')}), "
        f"{env['platform']}, {env['timestamp']}. Real SciFact text; "
        f"{result['queries']} real claims as queries. "
        "Produced by `python -m ragroute.evals.benchmarks.scale`.",
        "",
        f"MiniLM alone: {result['model_embed_chunks_per_s']} chunks/s on this machine.",
        "",
        "| chunks | store ingest chunks/s | est. with model chunks/s | hybrid p50 / p95 ms "
        "| BM25 path p50 / p95 ms | dense path p50 / p95 ms | plain rank-bm25 get_scores p50 / p95 ms "
        "| RSS MiB | disk MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["sizes"]:

        def pp(key: str, row: dict[str, Any] = r) -> str:
            return f"{row[key]['p50_ms']:.1f} / {row[key]['p95_ms']:.1f}"

        lines.append(
            f"| {r['chunks']:,} | {r['ingest_chunks_per_s']} "
            f"| {r['estimated_ingest_with_model_chunks_per_s']} | {pp('hybrid_search_k10')} "
            f"| {pp('keyword_search_k10')} | "
            f"{pp('dense_search_k10')} | {pp('plain_rank_bm25_get_scores')} | {r['rss_after_ingest_mb']} "
            f"| {r['disk_mb']} |"
        )
    lines += [
        "",
        "Keeping the index live (after a bulk ingest, and after adding one document):",
        "",
        "| chunks | first query after bulk ingest ms | upsert one doc ms | first query after it ms "
        "| peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    for r in result["sizes"]:
        lines.append(
            f"| {r['chunks']:,} | {r.get('first_query_after_ingest_ms')} | {r.get('single_doc_upsert_ms')} "
            f"| {r.get('first_query_after_single_upsert_ms')} | {r['peak_rss_mb']} |"
        )
    lines += ["", "## Reading this", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every size and write evals/results/scale.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--workdir", help="where the temporary indexes go (default: a temp folder)")
    parser.add_argument(
        "--seed-index", help="index whose chunk texts and vectors to reuse (default: SciFact's)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ragroute.tools.embeddings import get_embedder

    ds = load_dataset("scifact")
    queries = [q.text for q in ds.queries[: args.queries]]
    embedder = ReusedEmbedder(get_embedder("minilm"))
    seed = args.seed_index or str(index_dir_for(ds))
    seeded = os.path.isfile(os.path.join(seed, "docstore.sqlite"))
    pieces = seed_from_index(seed, embedder) if seeded else make_pieces(ds.corpus)
    model_rate = embed_rate(embedder.base, pieces)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    workdir = args.workdir or tempfile.mkdtemp(prefix="ragroute-scale-")
    rows = []
    for n in sizes:
        print(f"size {n:,} ...", file=sys.stderr, flush=True)
        row = run_size(n, pieces, queries, embedder, workdir)
        rate = row["ingest_chunks_per_s"]
        row["estimated_ingest_with_model_chunks_per_s"] = round(1 / (1 / rate + 1 / model_rate), 1)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    source = (
        f"the chunk texts of {seed} with their stored MiniLM vectors (embedded as 'title + chunk')"
        if seeded
        else "SciFact abstracts split into 3-sentence pieces"
    )
    notes = [
        f"{len(pieces):,} distinct real-text pieces: {source}. Sizes above that repeat pieces with a "
        "'[copy n]' suffix reusing the original's vector. The ingest rate column is therefore the stores' "
        f"rate without the model; MiniLM alone embeds {model_rate:.0f} chunks/s here, and the estimated "
        "end-to-end rate combines both (1 / (1/store + 1/model)).",
        "One single-chunk document per piece, upserted in batches of 256 through "
        "HybridIndex.upsert_documents (chunking is not included; see tools/ingest for the full pipeline).",
        "plain rank-bm25 = BM25Okapi.get_scores over every document for each query, as rank-bm25 is normally "
        "used; its cost grows linearly with the corpus. The index's BM25 path keeps rank-bm25's scores but "
        "uses per-term posting arrays, so it only touches documents containing a query term.",
    ]
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        growth = b["chunks"] / a["chunks"]
        plain = b["plain_rank_bm25_get_scores"]["p50_ms"] / max(
            a["plain_rank_bm25_get_scores"]["p50_ms"], 1e-9
        )
        ours = b["keyword_search_k10"]["p50_ms"] / max(a["keyword_search_k10"]["p50_ms"], 1e-9)
        hybrid = b["hybrid_search_k10"]["p50_ms"] / max(a["hybrid_search_k10"]["p50_ms"], 1e-9)
        notes.append(
            f"From {a['chunks']:,} to {b['chunks']:,} chunks ({growth:.0f}x): plain rank-bm25 p50 grew "
            f"{plain:.1f}x, the index's BM25 path {ours:.1f}x, hybrid search {hybrid:.1f}x."
        )
    big = rows[-1]
    plain_ms = ", ".join(
        f"{r['plain_rank_bm25_get_scores']['p50_ms']:.0f} ms at {r['chunks']:,}" for r in rows
    )
    ours_ms = ", ".join(f"{r['keyword_search_k10']['p50_ms']:.1f} ms at {r['chunks']:,}" for r in rows)
    notes.append(
        f"Where BM25 stops scaling: plain rank-bm25 scores every chunk for every query ({plain_ms}"
        " p50 on this machine), so it is the first thing to break past ~10k chunks. ragroute's BM25 path "
        "keeps rank-bm25's scores with posting arrays "
        f"({ours_ms}), "
        "but still holds every chunk's tokens in memory and rebuilds its arrays after a change: the first "
        f"query after adding one document took {big.get('first_query_after_single_upsert_ms')} ms at "
        f"{big['chunks']:,} chunks."
    )
    notes.append(
        "Advice: up to ~100k chunks with batch updates the default engine is fine. Beyond that, or with a "
        "steady stream of small updates, move keyword search to an inverted-index engine that updates "
        "incrementally (bm25s for a static in-process index; Tantivy, OpenSearch or Elasticsearch for live "
        "updates) and run Chroma as a server (chroma_mode='http')."
    )
    result = {
        "benchmark": "scale",
        "model_embed_chunks_per_s": round(model_rate, 1),
        "queries": len(queries),
        "distinct_pieces": len(pieces),
        "sizes": rows,
        "notes": notes,
        "environment": {**environment_info(), "torch_threads": _torch_threads()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2))
    (out / "scale.md").write_text(to_markdown(result))
    print(to_markdown(result))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
