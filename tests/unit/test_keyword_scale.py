"""evals/benchmarks/keyword_scale.py on a tiny synthetic index: the rank-bm25 run finds its upserts, and the
report renders one row per engine and size."""

from __future__ import annotations

import numpy as np
from ragroute.evals.benchmarks.keyword_scale import bench_rank_bm25, chunk_terms, markdown


def test_rank_bm25_run_on_a_tiny_index():
    terms = ["alpha", "beta", "gamma", "delta", "omega"]
    probs = np.asarray([0.4, 0.3, 0.15, 0.1, 0.05])
    ids = chunk_terms(500, 6, probs, seed=3)
    assert ids.shape == (500, 6) and ids.max() < len(terms)
    assert (chunk_terms(500, 6, probs, seed=3) == ids).all()  # the same chunks for every engine
    r = bench_rank_bm25(terms, ids, [["alpha", "omega"], ["gamma"], ["beta"], ["delta"]], upserts=2)
    assert len(r["upsert_to_findable_s"]) == 2 and all(s >= 0 for s in r["upsert_to_findable_s"])
    assert r["query"]["p50_ms"] <= r["query"]["p95_ms"]
    report = {
        "when": "2026-11-29T11:00:00Z",
        "machine": {"cpus": 2, "load_avg_1m_at_end": 3.0},
        "setup": {
            "terms_per_chunk": 6,
            "vocabulary": "5 terms",
            "queries": "4",
            "milvus_rows": "-",
            "upserts": 2,
        },
        "results": [{**r, "chunks": 500}],
    }
    assert "| 500 | rank-bm25 in process" in markdown(report)
