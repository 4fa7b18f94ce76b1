"""What every eval run reports: progress bars, averaged and percentile summaries, run and dataset info."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from ragroute.evals import metrics as M
from ragroute.evals.datasets import EvalDataset

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


def progress_bar(items: Sequence[Any], enabled: bool, desc: str) -> Iterable[Any]:
    """`items`, behind a tqdm progress bar when `enabled`."""
    if not enabled:
        return items
    from tqdm import tqdm  # only when a bar is shown

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


def aggregate(records: list[dict[str, Any]], names: Iterable[str]) -> dict[str, float | None]:
    """Mean of each named per-query metric over the records (None where no record has it)."""
    return {name: M.mean(r["metrics"].get(name) for r in records) for name in names}


def round_floats(value: Any) -> Any:
    """`value` with every float (in nested dicts and lists) rounded to 6 digits."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [round_floats(v) for v in value]
    return value


def dataset_info(ds: EvalDataset, n: int) -> dict[str, Any]:
    """The results file's `dataset` entry: name, kind, path, split and the number of queries run."""
    return {"name": ds.name, "kind": ds.kind, "path": ds.path, "split": ds.split, "queries": n}


def node_summary(values: list[float]) -> dict[str, float | None]:
    """Latency percentiles, mean and call count of one step."""
    return {
        "p50_ms": M.percentile(values, 50),
        "p95_ms": M.percentile(values, 95),
        "p99_ms": M.percentile(values, 99),
        "mean_ms": M.mean(values),
        "calls": len(values),
    }
