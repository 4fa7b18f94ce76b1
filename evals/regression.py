"""Regression checks: quality metrics of a run that dropped versus a baseline beyond a threshold."""

from __future__ import annotations

from typing import Any

from ragroute.evals.report import GRAPH_METRICS
from ragroute.tools.errors import ConfigError

# quality metrics where higher is better (regression checks compare these)
QUALITY_PREFIXES = ("ndcg@", "recall@", "hit@", "mrr@", "precision@")
QUALITY_KEYS = (*GRAPH_METRICS, "abstain_accuracy", "answer_rate", "decision_accuracy")


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
