"""evals/benchmarks/load_serve.py helpers: percentiles, summaries, the distinct question pool, CPU time
from /proc and the Markdown report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ragroute.evals.benchmarks import load_serve
from ragroute.evals.benchmarks.load_serve import cpu_seconds, markdown, percentile, question_pool, summarize


def test_percentile_interpolates_like_numpy():
    np = pytest.importorskip("numpy")
    values = [0.3, 0.1, 0.9, 0.5, 0.7, 0.2]
    for q in (0, 25, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([], 95) == 0.0


def test_summarize_reports_milliseconds():
    s = summarize([0.1, 0.2, 0.3, 0.4])
    assert s["n"] == 4 and s["mean_ms"] == 250.0 and s["p50_ms"] == 250.0 and s["max_ms"] == 400.0
    assert summarize([])["n"] == 0


def test_question_pool_never_repeats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, texts in {"a": ["Why X?", "why  x?", "How Y?"], "b": ["How Y?", "What Z?"]}.items():
        (tmp_path / name).mkdir()
        lines = [json.dumps({"_id": str(i), "text": t}) for i, t in enumerate(texts)]
        (tmp_path / name / "queries.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(load_serve, "DATA", tmp_path)
    pool = question_pool(["a", "b"], seed=1)
    assert sorted(pool) == ["How Y?", "What Z?", "Why X?"]  # case/space variants and repeats dropped
    assert question_pool(["a", "b"], seed=1) == pool


def test_cpu_seconds_counts_this_process():
    spent = sum(os.times()[:2])
    sum(i * i for i in range(2_000_000))  # burn some CPU
    assert cpu_seconds(os.getpid()) >= spent - 0.05
    assert cpu_seconds(2**22 + 12345) == 0.0  # no such process


def _config(backend: str, replicas: int, rps: float) -> dict:
    lat = summarize([0.1 * replicas, 0.2])
    return {
        "backend": backend,
        "replicas": replicas,
        "clients": 4 * replicas,
        "throughput_rps": rps,
        "rps_vs_one_replica": rps / 5.0,
        "ask": lat,
        "unloaded": summarize([0.05] if replicas == 1 else []),
        "errors": 0,
        "cpu_ms_per_request": 150.0,
        "client_cpu_ms_per_request": 3.0,
        "node_ms_per_request": {"classify": 40.0, "rerank": 30.0},
    }


def test_markdown_has_one_row_per_configuration():
    report = {
        "when": "2026-11-29T11:00:00Z",
        "machine": {"cpus": 2, "load_avg_1m_at_start": 1.0, "load_avg_1m_at_end": 2.0},
        "setup": {
            "corpus": "scifact_dev",
            "questions": "807 distinct",
            "generator": "offline",
            "warm_asks_per_replica": 6,
            "baseline_sequential_asks": 20,
            "clients_per_replica": 4,
            "seconds_per_config": 40,
        },
        "configs": [
            _config("embedded", 1, 5.0),
            _config("milvus-lite server", 1, 5.0),
            _config("milvus-lite server", 2, 9.0),
        ],
        "probe_milvus": {"questions": 40, "embed_ms": 12.0, "search_ms": 30.5},
    }
    text = markdown(report)
    assert "| milvus-lite server | 2 | 8 | 9.0 | 1.8 |" in text
    assert text.count("| embedded | 1 |") == 2  # the results row and the node row
    assert "query embedding 12.0 ms, whole hybrid search 30.5 ms (so 18.5 ms is" in text


def test_markdown_renders_the_committed_results():
    path = Path(__file__).resolve().parents[2] / "evals" / "results" / "load_serve.json"
    report = json.loads(path.read_text())
    text = markdown(report)
    assert all(f"| {c['backend']} | {c['replicas']} | {c['clients']} |" in text for c in report["configs"])
