"""Silver route labels (Adaptive-RAG style): run every route on each question, keep the cheapest that works.

For each question the whole offline graph runs once per forced route (simple, expand, multihop). A route
solves the question when all its gold passages are in the graph's final context (after rerank and
pruning: `supporting_in_context`). The label is the cheapest route that solves it (simple < expand <
multihop); a question no route solves (or one without gold passages, like an unanswerable ClapNQ
question) is labelled with the cheapest route. Per-route outcomes are cached in a JSONL file, one line
per (dataset, corpus, question, route), so reruns only run what is missing.

Run: .venv/bin/python -m ragroute.evals.benchmarks.router_silver [--sets hotpotqa,clapnq,scifact_slice]
Writes evals/results/router_silver.jsonl (the cache) and router_silver.{json,md} (a summary).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragroute.evals import metrics as M
from ragroute.evals.datasets import EvalDataset, EvalQuery, load_dataset, resolve_dataset
from ragroute.evals.eval_index import build_index, eval_index_root
from ragroute.evals.graph_eval import run_graph_eval
from ragroute.evals.report import environment_info, progress_bar
from ragroute.runtime import providers
from ragroute.tools.router_model import ROUTES

RESULTS = Path(__file__).resolve().parents[1] / "results"
CACHE = RESULTS / "router_silver.jsonl"
DEFAULT_SETS = "hotpotqa,clapnq,scifact_slice"
# response/retrieval caches off: every route pays its own probe and searches, so latencies compare
RUN_CONFIG: dict[str, Any] = {"cache": False, "all_access": True}


def sample_queries(ds: EvalDataset, n: int | None, seed: int = 13) -> list[EvalQuery]:
    """`n` questions drawn at random with a fixed seed (all when n is None or covers the set), file order."""
    if n is None or n >= len(ds.queries):
        return list(ds.queries)
    keep = set(random.Random(seed).sample(range(len(ds.queries)), n))
    return [q for i, q in enumerate(ds.queries) if i in keep]


def _key(dataset: str, fingerprint: str, qid: str, route: str) -> tuple[str, str, str, str]:
    return dataset, fingerprint, qid, route


def read_cache(path: Path) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Cached outcomes by (dataset, corpus fingerprint, question id, route)."""
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                out[_key(rec["dataset"], rec["corpus"], rec["qid"], rec["route"])] = rec
    return out


def _outcome(ds: EvalDataset, fingerprint: str, q: EvalQuery, route: str, rec: dict[str, Any], index: Any):
    solved = rec["metrics"].get("supporting_in_context")
    chunks = int(rec.get("context_chunks") or 0)
    same_size = None
    if q.gold_doc_ids and ds.kind == "beir":  # a single hybrid retrieval of as many chunks as the context
        hits = index.search(q.text, k=max(1, chunks))
        same_size = M.all_found([h.doc_id for h in hits], q.gold_doc_ids)
    return {
        "dataset": ds.name,
        "corpus": fingerprint,
        "qid": q.qid,
        "question": q.text,
        "route": route,
        "solved": solved,
        "answerable": q.answerable,
        "latency_ms": round(float(rec["latency_ms"]), 2),
        "context_chunks": chunks,
        "single_same_size": same_size,
        "error": rec.get("error"),
    }


def route_outcomes(
    ds: EvalDataset,
    queries: Sequence[EvalQuery],
    *,
    index: Any,
    cache: Path = CACHE,
    routes: Sequence[str] = ROUTES,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Per (question, route) outcome for `queries`: from the cache, or by running the graph (then cached)."""
    fingerprint = ds.corpus_fingerprint() if ds.corpus else f"index:{getattr(index, 'path', '')}"
    known = read_cache(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    todo = [q for q in queries if any(_key(ds.name, fingerprint, q.qid, r) not in known for r in routes)]
    for i, q in enumerate(progress_bar(todo, progress, "routes")):
        # the routes of one question run back to back, in an order rotated per question: whichever runs
        # first pays for embedding the question and its passages, so each route pays it equally often
        order = [routes[(i + j) % len(routes)] for j in range(len(routes))]
        one = dataclasses.replace(ds, queries=[q])
        with cache.open("a", encoding="utf-8") as handle:
            for route in order:
                if _key(ds.name, fingerprint, q.qid, route) in known:
                    continue
                run = run_graph_eval(one, {**RUN_CONFIG, "route": route}, index=index, progress=False)
                out = _outcome(ds, fingerprint, q, route, run["records"][0], index)
                known[_key(ds.name, fingerprint, q.qid, route)] = out
                handle.write(json.dumps(out) + "\n")
    return [known[_key(ds.name, fingerprint, q.qid, r)] for q in queries for r in routes]


def label(by_route: dict[str, dict[str, Any]]) -> str:
    """The cheapest route whose final context held all gold passages; the cheapest when none did."""
    for route in ROUTES:
        if by_route.get(route, {}).get("solved"):
            return route
    return ROUTES[0]


def questions(outcomes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per question: its outcomes per route and its silver label."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in outcomes:
        row = rows.setdefault(
            (rec["dataset"], rec["qid"]),
            {"dataset": rec["dataset"], "qid": rec["qid"], "question": rec["question"], "routes": {}},
        )
        row["routes"][rec["route"]] = rec
    for row in rows.values():
        row["label"] = label(row["routes"])
    return list(rows.values())


def open_dataset_index(ds: EvalDataset, index_dir: str | None = None, progress: bool = False) -> Any:
    """The index a dataset is labelled on: its eval index (BEIR), else the index at `index_dir` (golden)."""
    if ds.kind == "beir":
        return build_index(ds, progress=progress)[0]
    from ragroute.context import Context

    return providers.index(Context(index_dir=index_dir, all_access=True))


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Label counts, solve rates and mean latency per route, per dataset."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        out[name] = {
            "questions": len(mine),
            "with_gold": sum(1 for r in mine if r["routes"]["simple"]["solved"] is not None),
            "labels": dict(Counter(r["label"] for r in mine)),
            "solved_by_route": {
                route: M.mean(
                    r["routes"][route]["solved"] for r in mine if r["routes"][route]["solved"] is not None
                )
                for route in ROUTES
            },
            "solved_by_any": M.mean(
                float(any(r["routes"][x]["solved"] for x in ROUTES))
                for r in mine
                if r["routes"]["simple"]["solved"] is not None
            ),
            "latency_mean_ms": {
                route: M.mean(r["routes"][route]["latency_ms"] for r in mine) for route in ROUTES
            },
        }
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """The summary as Markdown."""
    env = result["environment"]
    lines = [
        "# Silver route labels",
        "",
        f"Each question run once per forced route (offline graph, caches off), {env['cpu_count']} shared CPU "
        f"cores, {env['timestamp']}. Label: the cheapest route whose final context held every gold passage.",
        "",
        "| dataset | questions (with gold) | labels | solved: simple / expand / multihop / any "
        "| mean ms: simple / expand / multihop |",
        "|---|---|---|---|---|",
    ]
    for name, s in result["datasets"].items():
        solved = " / ".join(f"{s['solved_by_route'][r] or 0:.3f}" for r in ROUTES)
        ms = " / ".join(f"{s['latency_mean_ms'][r] or 0:.0f}" for r in ROUTES)
        lines.append(
            f"| {name} | {s['questions']} ({s['with_gold']}) | {s['labels']} | {solved} / "
            f"{s['solved_by_any'] or 0:.3f} | {ms} |"
        )
    return "\n".join(lines) + "\n"


def scifact_slice(root: Path) -> Path:
    """A BEIR folder of the SciFact train claims whose gold abstracts all lie in the scifact_dev corpus
    (1,031 abstracts), judged over that corpus: SciFact questions at a fraction of the full corpus's
    indexing cost (5,183 abstracts). Written under `root`; returns its path."""
    full, dev = resolve_dataset("scifact"), resolve_dataset("scifact_dev")
    folder = root / "scifact_slice"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs = {
        json.loads(line)["_id"] for line in (dev / "corpus.jsonl").read_text().splitlines() if line.strip()
    }
    qrels: dict[str, list[str]] = {}
    for line in (full / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, doc, grade = line.split("\t")
        if int(grade) > 0:
            qrels.setdefault(qid, []).append(doc)
    keep = {q for q, d in qrels.items() if set(d) <= docs}
    shutil.copyfile(dev / "corpus.jsonl", folder / "corpus.jsonl")
    lines = [line for line in (full / "queries.jsonl").read_text().splitlines() if line.strip()]
    (folder / "queries.jsonl").write_text(
        "\n".join(line for line in lines if json.loads(line)["_id"] in keep) + "\n"
    )
    rows = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t1" for q in sorted(keep) for d in qrels[q])]
    (folder / "qrels" / "train.tsv").write_text("\n".join(rows) + "\n")
    return folder


def dataset_for(name: str) -> EvalDataset:
    """A dataset by name; `scifact_slice` is built beside the eval indexes from the SciFact data."""
    return load_dataset(scifact_slice(eval_index_root() / "data") if name == "scifact_slice" else name)


def parse_sets(spec: str) -> list[tuple[str, int | None]]:
    """'hotpotqa,scifact:300' -> [("hotpotqa", None), ("scifact", 300)]."""
    out = []
    for part in spec.split(","):
        name, _, n = part.strip().partition(":")
        if name:
            out.append((name, int(n) if n else None))
    return out


def label_sets(sets: Sequence[tuple[str, int | None]], cache: Path = CACHE, progress: bool = True):
    """Question rows (with outcomes and labels) for each (dataset, sample size)."""
    rows: list[dict[str, Any]] = []
    for name, n in sets:
        ds = dataset_for(name)
        index = open_dataset_index(ds, progress=progress)
        try:
            rows += questions(
                route_outcomes(ds, sample_queries(ds, n), index=index, cache=cache, progress=progress)
            )
        finally:
            index.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Label the chosen sets and write the cache and the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=DEFAULT_SETS, help="name[:sample],... (default %(default)s)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    rows = label_sets(parse_sets(args.sets), cache=out / CACHE.name)
    result = {"sets": args.sets, "datasets": summary(rows), "environment": environment_info()}
    (out / "router_silver.json").write_text(json.dumps(result, indent=2))
    (out / "router_silver.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
