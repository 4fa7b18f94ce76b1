"""`ragroute eval DATASET`: run an evaluation, print a table, write JSON + a PNG chart, guard a baseline.

Exit codes: 0 ok, 2 user error (bad dataset/config; printed by the caller), 3 regression against the
baseline beyond --max-drop.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragroute.evals.charts import plot_results
from ragroute.evals.datasets import load_dataset
from ragroute.evals.report import GRAPH_METRICS
from ragroute.tools.errors import InputError, RagrouteError

EXIT_REGRESSION = 3
# display order of the summary table: retrieval, then answer quality, then operations
HEADLINE = (
    *("ndcg@10", "recall@100", "recall@10", "hit@5", "mrr@10"),
    *GRAPH_METRICS[:-1],
    *("abstain_accuracy", "answer_rate", "idk_rate"),
    *("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"),
    *("prompt_tokens_mean", "completion_tokens_mean", "cost_per_query_usd", "cache_hit_rate"),
    *("queries", "errors"),
)


def _ks(raw: str) -> list[int]:
    try:
        ks = sorted({int(x) for x in raw.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k must be comma-separated integers, got {raw!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"--k values must be positive, got {raw!r}")
    return ks


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `eval` options to `parser` (used by register() and by `python -m ragroute.evals.cli`)."""
    parser.add_argument(
        "dataset",
        help="BEIR folder, golden .jsonl, or a short name (scifact, scifact_dev, clapnq, hotpotqa) "
        "looked up under $RAGROUTE_DATA_DIR or ../shared/data",
    )
    parser.add_argument("--mode", choices=("retrieval", "graph"), default="graph", help="default: graph")
    parser.add_argument("--config", help="settings as a JSON object or a JSON file (index, search, graph)")
    parser.add_argument("--limit", type=_positive, help="evaluate only the first N questions")
    parser.add_argument("--split", help="qrels split name or file (default: the only one, else test)")
    parser.add_argument("--k", type=_ks, default=None, help="cut-offs, e.g. 1,3,5,10,100")
    parser.add_argument(
        "--reranker", help="retrieval mode: auto (default, like the graph), none, maxsim, cross-encoder:/p"
    )
    parser.add_argument(
        "--judge", help="graph mode: LLM spec that grades answers (default: the config's llm)"
    )
    parser.add_argument("--prices", help="price table JSON (model -> {prompt, completion} $ per 1K tokens)")
    parser.add_argument("--out", default="eval_results", help="folder for results JSON and chart PNG")
    parser.add_argument("--no-chart", action="store_true", help="do not write the PNG chart")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the dataset's evaluation index")
    parser.add_argument("--baseline", help="results or metrics JSON to compare against (regression mode)")
    parser.add_argument("--max-drop", type=float, default=0.02, help="allowed absolute drop per metric")
    parser.add_argument("--save-baseline", help="also write the flat metrics to this file")
    if not any(a.dest == "json" for a in parser._actions):
        parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `eval` subcommand to the main `ragroute` parser."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate retrieval or the whole graph on a dataset",
        description="Evaluate ragroute on a BEIR folder or golden JSONL; exit 3 on a baseline regression.",
    )
    add_eval_arguments(parser)
    parser.set_defaults(func=run_eval_command)
    return parser


def _load_baseline(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise InputError(f"--baseline {path!r} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"--baseline {path!r} is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"--baseline {path!r} must hold a JSON object of metrics")
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def print_table(results: dict[str, Any], regressions: list[dict[str, Any]] | None = None) -> None:
    """Human-readable summary: headline metrics, quality per route, latency per node."""
    # rich only when a table is printed (`--json` runs and `ragroute --help` do without it)
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)  # pipes and CI logs: don't squeeze columns
    metrics = results["metrics"]
    ds = results["dataset"]
    split = ds.get("split") or ds["kind"]
    table = Table(title=f"{ds['name']} ({split}) - {results['mode']} - {ds['queries']} queries")
    table.add_column("metric")
    table.add_column("value", justify="right")
    shown = [m for m in HEADLINE if metrics.get(m) is not None]
    shown += [m for m in metrics if m not in shown and re.match(r"(ndcg|recall|hit|mrr)@(1|3|5|10)$", m)]
    for name in shown:
        table.add_row(name, _fmt(metrics[name]))
    console.print(table)
    if results.get("per_route"):
        routes = Table(title="quality per route")
        cols: tuple[str, ...] = ("queries", "share", "answer_f1", "faithfulness", "context_recall")
        cols += ("abstained", "latency_p50_ms")
        routes.add_column("route")
        for c in cols:
            routes.add_column(c, justify="right")
        for route, row in results["per_route"].items():
            routes.add_row(route, *(_fmt(row.get(c)) for c in cols))
        console.print(routes)
    nodes = results.get("per_node_latency") or {}
    if len(nodes) > 1:
        lat = Table(title="latency per node (ms)")
        for c in ("node", "p50", "p95", "p99", "mean", "calls"):
            lat.add_column(c, justify="right" if c != "node" else "left")
        for node, row in nodes.items():
            lat.add_row(node, *(_fmt(row.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "calls")))
        console.print(lat)
    if regressions:
        console.print(f"[bold red]REGRESSION[/]: {len(regressions)} metric(s) dropped beyond the threshold")
        for r in regressions:
            console.print(f"  {r['metric']}: {r['baseline']:.4f} -> {r['current']:.4f} (-{r['drop']:.4f})")


def run_eval_command(args: argparse.Namespace) -> int:
    """Run `ragroute eval` from parsed arguments; returns the exit code."""
    # the runners load the index, the models and the graph: imported on use so `ragroute --help` stays fast
    from ragroute.evals import runner

    config = runner.parse_config(args.config)
    if getattr(args, "index", None) and "index_dir" not in config:
        config["index_dir"] = args.index  # the top-level --index: the user's index, for golden sets
    if args.max_drop < 0:
        raise InputError(f"--max-drop must be >= 0, got {args.max_drop}")
    baseline = _load_baseline(args.baseline) if args.baseline else None
    dataset = load_dataset(args.dataset, args.split)
    progress = not args.no_progress
    if args.mode == "retrieval":
        if args.reranker:
            config["reranker"] = args.reranker
        results = runner.run_retrieval_eval(
            dataset,
            config=config,
            ks=args.k or runner.DEFAULT_KS,
            limit=args.limit,
            rerank=config.pop("reranker", "auto"),
            progress=progress,
            rebuild=args.rebuild,
        )
    else:
        if args.reranker:
            raise InputError("--reranker applies to --mode retrieval; for the graph put it in --config")
        results = runner.run_graph_eval(
            dataset,
            config,
            limit=args.limit,
            ks=args.k or (5, 10),
            prices=args.prices,
            progress=progress,
            rebuild=args.rebuild,
            judge=None if args.judge == "none" else (args.judge or config.get("llm")),
        )
    regressions = runner.compare_to_baseline(results, baseline, args.max_drop) if baseline else []
    results["regressions"] = regressions

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{dataset.name}-{args.mode}-{stamp}"
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    chart_path = None
    if not args.no_chart:
        chart_path = plot_results(results, out / f"{stem}.png")
    if args.save_baseline:
        Path(args.save_baseline).write_text(json.dumps(results["metrics"], indent=2))

    if args.json:
        flat = {
            **results["metrics"],
            "dataset": dataset.name,
            "mode": args.mode,
            "results_json": str(json_path),
            "chart_png": str(chart_path) if chart_path else None,
            "regressions": regressions,
        }
        print(json.dumps(flat, ensure_ascii=False, default=str))
    else:
        print_table(results, regressions)
        print(f"results: {json_path}" + (f"\nchart:   {chart_path}" if chart_path else ""))
    return EXIT_REGRESSION if regressions else 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ragroute.evals.cli DATASET ...`: the same as `ragroute eval`."""
    parser = argparse.ArgumentParser(prog="ragroute eval", description=__doc__)
    add_eval_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_eval_command(args)
    except RagrouteError as exc:
        print(f"ragroute eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
