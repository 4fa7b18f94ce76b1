"""evals/benchmarks/load_serve.py helpers: percentiles, summaries and the Markdown report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ragroute.evals.benchmarks.load_serve import markdown, percentile, summarize


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


def test_markdown_renders_the_committed_results():
    path = Path(__file__).resolve().parents[2] / "evals" / "results" / "load_serve.json"
    if not path.exists():
        pytest.skip("no committed load_serve results")
    report = json.loads(path.read_text())
    text = markdown(report)
    assert text.count("\n| ") == len(report["levels"]) + 1  # header + one row per level
    assert all(f"| {lv['clients']} |" in text for lv in report["levels"])
    assert f"{report['after_shutdown']['acknowledged_ingests']} acknowledged ingests" in text
