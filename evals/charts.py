"""One PNG per evaluation run: latency distribution, per-node latency breakdown, quality per route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RETRIEVAL_BARS = ("ndcg@10", "recall@100", "hit@5", "mrr@10")
ROUTE_BARS = ("answer_f1", "faithfulness", "context_recall", "citation_precision")


def plot_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write the run's chart to `path` (PNG, matplotlib Agg backend) and return the path."""
    import matplotlib  # the optional `charts` extra, loaded only when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = results.get("records", [])
    metrics = results.get("metrics", {})
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    title = f"ragroute eval: {results['dataset']['name']} ({results['mode']}, {len(records)} queries)"
    fig.suptitle(title)

    ax = axes[0]
    latencies = [r["latency_ms"] for r in records if r.get("latency_ms") is not None]
    if latencies:
        ax.hist(latencies, bins=min(30, max(5, len(latencies) // 3)), color="#4C72B0", alpha=0.85)
        for q, style in (("50", "--"), ("95", ":")):
            value = metrics.get(f"latency_p{q}_ms")
            if value is not None:
                ax.axvline(value, color="black", linestyle=style, label=f"p{q} {value:.0f} ms")
        ax.legend()
    ax.set_title("latency per query")
    ax.set_xlabel("ms")
    ax.set_ylabel("queries")

    ax = axes[1]
    nodes = {n: v for n, v in results.get("per_node_latency", {}).items() if n != "total"}
    if nodes:
        names = list(nodes)[::-1]
        p50 = [nodes[n].get("p50_ms") or 0 for n in names]
        p95 = [nodes[n].get("p95_ms") or 0 for n in names]
        y = range(len(names))
        ax.barh([i + 0.2 for i in y], p95, height=0.4, label="p95", color="#DD8452")
        ax.barh([i - 0.2 for i in y], p50, height=0.4, label="p50", color="#4C72B0")
        ax.set_yticks(list(y), names)
        ax.legend()
    ax.set_title("latency per node")
    ax.set_xlabel("ms")

    ax = axes[2]
    routes = results.get("per_route") or {}
    if routes:
        bars = [b for b in ROUTE_BARS if any(routes[r].get(b) is not None for r in routes)]
        width = 0.8 / max(1, len(bars))
        for j, bar in enumerate(bars):
            xs = [i + j * width for i in range(len(routes))]
            ax.bar(xs, [routes[r].get(bar) or 0 for r in routes], width=width, label=bar)
        ax.set_xticks([i + width * (len(bars) - 1) / 2 for i in range(len(routes))])
        ax.set_xticklabels([f"{r}\n(n={routes[r]['queries']})" for r in routes])
        ax.set_title("quality per route")
        ax.legend(fontsize=8)
    else:
        shown = [m for m in RETRIEVAL_BARS if metrics.get(m) is not None]
        ax.bar(shown, [metrics[m] for m in shown], color="#55A868")
        for i, m in enumerate(shown):
            ax.text(i, metrics[m] + 0.01, f"{metrics[m]:.3f}", ha="center")
        ax.set_title("retrieval quality")
    ax.set_ylim(0, 1.05)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
