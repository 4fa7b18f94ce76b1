"""Compare two runs of the refactor benchmarks (retrieval_scifact, side_by_side, graph_dev), e.g. before and
after a change: every quality number side by side with its difference, then latency with the conditions.

Each folder holds the JSON files the benchmarks write (`--out`). Quality should match exactly when both runs
used the same index folders (RAGROUTE_EVAL_INDEX_DIR copies of one build); a fresh build differs a little
because Chroma's HNSW graph is built in a nondeterministic order.

Run: .venv/bin/python -m ragroute.evals.benchmarks.compare_runs BEFORE_DIR AFTER_DIR
        [--labels before,after] [--title TEXT] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

Value = tuple[str, Any]  # (name, value) of one run
Row = tuple[str, Any, Any]  # (name, before, after)


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def _get(data: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def retrieval_rows(data: dict[str, Any] | None) -> tuple[list[Value], list[Value]]:
    """(quality, latency) values of retrieval_scifact.json."""
    quality = [
        (f"retrieval_scifact {path} {metric}", _get(data, "metrics", path, metric))
        for path in ("bm25", "dense", "hybrid")
        for metric in ("ndcg@10", "recall@10", "recall@100", "hit@5")
    ]
    latency = [
        ("retrieval_scifact ingest s (wall)", _get(data, "ingest_s")),
        ("retrieval_scifact hybrid k=10 p50 ms", _get(data, "latency_ms", "hybrid_k10", "p50")),
        ("retrieval_scifact hybrid k=10 p95 ms", _get(data, "latency_ms", "hybrid_k10", "p95")),
    ]
    return quality, latency


def side_by_side_rows(data: dict[str, Any] | None) -> tuple[list[Value], list[Value]]:
    """Rows of the ragroute systems in side_by_side_scifact.json (the baselines do not change with us)."""
    quality: list[Value] = []
    latency: list[Value] = []
    for system in _get(data, "systems") or []:
        name = str(system.get("system"))
        if not name.startswith("ragroute"):
            continue
        for metric in ("ndcg@10", "recall@100", "hit@5", "mrr@10"):
            quality.append((f"side_by_side {name} {metric}", system.get(metric)))
        for metric in ("latency_p50_ms", "latency_p95_ms"):
            latency.append((f"side_by_side {name} {metric.removeprefix('latency_')}", system.get(metric)))
    return quality, latency


def graph_rows(data: dict[str, Any] | None) -> tuple[list[Value], list[Value]]:
    """HotpotQA, ClapNQ and SciFact rows of graph_dev.json."""
    quality: list[Value] = []
    latency: list[Value] = []
    for system, values in (_get(data, "hotpotqa", "graph") or {}).items():
        for metric in (
            "supporting_in_context",
            "answer_recall",
            "context_docs_mean",
            "answered_with_gold_citation",
        ):
            quality.append((f"graph_dev hotpotqa {system} {metric}", values.get(metric)))
        latency.append((f"graph_dev hotpotqa {system} p50 ms", values.get("latency_p50_ms")))
    for system, values in (_get(data, "hotpotqa", "same_size_comparison") or {}).items():
        quality.append((f"graph_dev hotpotqa {system} same-size gain (points)", values.get("gain_points")))
    summary = _get(data, "clapnq", "summary") or {}
    for metric in ("answered_with_gold_citation", "abstain_accuracy", "answer_f1", "citation_precision"):
        quality.append((f"graph_dev clapnq {metric}", summary.get(metric)))
    for metric in ("latency_p50_ms", "latency_p95_ms"):
        latency.append((f"graph_dev clapnq {metric.removeprefix('latency_')}", summary.get(metric)))
    quality.append(("graph_dev scifact nDCG@10 of retrieved", _get(data, "scifact", "ndcg@10_of_retrieved")))
    for metric in ("latency_p50_ms", "latency_p95_ms"):
        latency.append(
            (
                f"graph_dev scifact end-to-end {metric.removeprefix('latency_')}",
                _get(data, "scifact", "latency_ms", metric),
            )
        )
    return quality, latency


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits > 1 else f"{value:.{digits}f}"
    return str(value)


def _diff(a: Any, b: Any, digits: int) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return ""
    delta = b - a
    return "0" if delta == 0 else f"{delta:+.{digits}f}"


def _pair(before: list[Value], after: list[Value]) -> list[Row]:
    """(name, before, after) for every name either run has (a missing file or system gives None)."""
    a, b = dict(before), dict(after)
    names = list(dict.fromkeys([n for n, _ in before] + [n for n, _ in after]))
    return [(n, a.get(n), b.get(n)) for n in names if a.get(n) is not None or b.get(n) is not None]


def compare(before: Path, after: Path) -> tuple[list[Row], list[Row]]:
    """All (name, before, after) quality rows and latency rows of the two folders."""
    quality: list[Row] = []
    latency: list[Row] = []
    for name, rows in (
        ("retrieval_scifact.json", retrieval_rows),
        ("side_by_side_scifact.json", side_by_side_rows),
        ("graph_dev.json", graph_rows),
    ):
        qa, la = rows(_load(before, name))
        qb, lb = rows(_load(after, name))
        quality += _pair(qa, qb)
        latency += _pair(la, lb)
    return quality, latency


def render(title: str, labels: tuple[str, str], quality: list[Row], latency: list[Row]) -> str:
    """The comparison as Markdown tables."""
    both = [(a, b) for _, a, b in quality if a is not None and b is not None]
    changed = sum(1 for a, b in both if a != b)
    lines = [
        f"# {title}",
        "",
        f"Quality numbers that differ: {changed} of {len(both)} measured in both runs.",
        "",
    ]
    header = f"| number | {labels[0]} | {labels[1]} | difference |"
    lines += ["## Quality", "", header, "|---|---|---|---|"]
    lines += [f"| {n} | {_fmt(a, 4)} | {_fmt(b, 4)} | {_diff(a, b, 4)} |" for n, a, b in quality]
    lines += ["", "## Latency (wall ms unless stated; see the conditions)", "", header, "|---|---|---|---|"]
    lines += [f"| {n} | {_fmt(a, 1)} | {_fmt(b, 1)} | {_diff(a, b, 1)} |" for n, a, b in latency]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--labels", default="before,after")
    parser.add_argument("--title", default="Benchmarks: two runs compared")
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    a, b = (args.labels.split(",") + ["after"])[:2]
    text = render(args.title, (a, b), *compare(args.before, args.after))
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
