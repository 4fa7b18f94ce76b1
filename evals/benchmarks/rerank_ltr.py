"""Learned rerank (pointwise logistic LTR) vs MaxSim vs plain hybrid on SciFact train and HotpotQA, k-fold.

1. For every question with qrels (or a fixed random --sample): the hybrid search's top CANDIDATES chunks
   (fused and per-source ranks and scores) and the best sentence cosine of the top DEPTH (what MaxSim and
   the LTR features read; the graph reranks rerank_depth=10 of them). Cached per dataset in
   evals/results/rerank_ltr_cache_<dataset>.json (git-ignored; resumable; --refresh rebuilds it).
2. Repeated k-fold over the pooled questions (stratified by dataset): fit tools/learned.fit on the
   training questions' top-DEPTH chunks (relevant: the chunk's document is in the qrels), rerank the
   held-out questions' top DEPTH, the rest keeps its fused order; nDCG@10 over documents (a document's
   chunks deduplicated), per dataset. Per fold: plain, MaxSim, LTR.
3. The default reranker: the one whose mean CV gain over plain hybrid exceeds two standard errors on
   every dataset (largest mean gain among those), else "none". Fit on every question of every dataset,
   export tools/models/rerank_ltr.json; time both rerankers on --latency questions.

Run: .venv/bin/python -m ragroute.evals.benchmarks.rerank_ltr [--datasets scifact,hotpotqa] [--folds 5]
     [--repeats 4] [--sample N] [--latency 100] [--refresh]
Writes evals/results/rerank_ltr_<dataset>.{json,md} and tools/models/rerank_ltr.json. An index held by
another process: copy its folder and set RAGROUTE_EVAL_INDEX_DIR to the copy's parent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ragroute.evals import metrics as M
from ragroute.evals.datasets import load_dataset
from ragroute.evals.runner import build_index, environment_info
from ragroute.tools import rerank_ltr as ltr
from ragroute.tools.learned import LogisticModel, fit

RESULTS = Path(__file__).resolve().parents[1] / "results"
CACHE = RESULTS / "rerank_ltr_cache.json"
CANDIDATES = 30  # Context.candidate_k
DEPTH = 10  # Context.rerank_depth
HIT_KEYS = ("chunk_id", "doc_id", "title", "score", "ranks", "source_scores")


def collect(
    dataset: str, refresh: bool = False, cache: Path = CACHE, sample: int = 0
) -> list[dict[str, Any]]:
    """Per claim: qid, qrels, compact hits, best sentence cosines of the top DEPTH; cached, resumable.

    `sample` > 0: the first `sample` claims with qrels of a fixed random permutation (seed 0).
    """
    done: dict[str, dict[str, Any]] = {}
    if cache.is_file() and not refresh:
        done = {c["qid"]: c for c in json.loads(cache.read_text())["claims"]}
    ds = load_dataset(dataset)
    queries = [q for q in ds.queries if ds.qrels.get(q.qid)]
    if sample > 0:  # a prefix of one fixed permutation: a larger sample contains a smaller one
        queries = [queries[i] for i in np.random.default_rng(0).permutation(len(queries))[:sample]]
    todo = [q for q in queries if q.qid not in done]
    if todo:
        _collect_into(done, ds, todo, cache)
    return [done[q.qid] for q in queries]


def _collect_into(done: dict[str, dict[str, Any]], ds: Any, todo: list[Any], cache: Path) -> None:
    """Search and score the `todo` claims, saving the cache every 25 claims (a killed run resumes)."""
    from ragroute.runtime import providers
    from ragroute.tools.index import sentences as sentence_store
    from ragroute.tools.rerankers import best_sentence_similarity

    index, _, _ = build_index(ds, progress=False)
    sentence_store.register(index)  # the reranker reads the sentence vectors stored at ingest
    embed = providers.embedder()

    def save() -> None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"dataset": ds.name, "claims": list(done.values())}))

    try:
        for n, q in enumerate(todo, 1):
            hits = [h.to_dict() for h in index.search(q.text, CANDIDATES)]
            sims = best_sentence_similarity(embed, q.text, hits[:DEPTH])
            done[q.qid] = {
                "qid": q.qid,
                "query": q.text,
                "qrels": ds.qrels[q.qid],
                "hits": [{k: h.get(k) for k in HIT_KEYS} | {"text": ""} for h in hits],
                "maxsim": [round(float(s), 5) for s in sims],
            }
            if n % 25 == 0:
                save()
                print(f"{ds.name}: {n}/{len(todo)} claims", file=sys.stderr, flush=True)
    finally:
        index.close()
        save()


def claim_rows(claim: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """LTR features and relevance labels of a claim's top DEPTH hits."""
    head = claim["hits"][:DEPTH]
    x = ltr.features(claim["query"], head, np.asarray(claim["maxsim"][: len(head)]))
    y = np.asarray([1 if claim["qrels"].get(h["doc_id"], 0) > 0 else 0 for h in head])
    return x, y


def ndcg(claim: dict[str, Any], head_scores: np.ndarray | None) -> float:
    """nDCG@10 over documents after reordering the top DEPTH by `head_scores` (None: fused order)."""
    hits = claim["hits"]
    order = list(range(len(hits)))
    if head_scores is not None:
        head = sorted(range(min(DEPTH, len(hits))), key=lambda i: -head_scores[i])
        order = head + order[len(head) :]
    docs = M.dedupe_ranking([hits[i]["doc_id"] for i in order])
    return float(M.ndcg_at_k(docs, claim["qrels"], 10))


def maxsim_scores(claim: dict[str, Any], alpha: float = 0.5) -> np.ndarray:
    """The MaxSim reranker's score of the top DEPTH (tools/rerankers.MaxSimReranker, default alpha)."""
    from ragroute.tools.rerankers import _minmax

    head = claim["hits"][:DEPTH]
    fused = np.asarray([float(h["score"]) for h in head])
    sims = np.asarray(claim["maxsim"][: len(head)])
    return alpha * _minmax(fused) + (1 - alpha) * _minmax(sims)


def fit_model(claims: list[dict[str, Any]], c: float) -> LogisticModel:
    """The pointwise LTR model fitted on these claims."""
    rows = [claim_rows(cl) for cl in claims]
    return fit(np.vstack([x for x, _ in rows]), np.concatenate([y for _, y in rows]), ltr.FEATURES, c=c)


def cross_validate(
    by_dataset: dict[str, list[dict[str, Any]]], folds: int, repeats: int, c: float
) -> dict[str, Any]:
    """Per dataset, per-fold nDCG@10 of plain, MaxSim and LTR over that dataset's held-out claims.

    The folds split the pooled claims (stratified by dataset); LTR is fitted on the training folds of
    every dataset, as the shipped model is fitted on all of them.
    """
    from sklearn.model_selection import StratifiedKFold

    pool = [(name, cl) for name, claims in by_dataset.items() for cl in claims]
    labels = [name for name, _ in pool]
    systems = ("plain hybrid", "maxsim", "ltr")
    per_fold: dict[str, dict[str, list[float]]] = {name: {s: [] for s in systems} for name in by_dataset}
    # each question's nDCG@10 per system in the first repeat (every question held out once)
    per_question: dict[str, dict[str, list[float]]] = {name: {s: [] for s in systems} for name in by_dataset}
    for seed in range(repeats):
        split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(pool)), labels)
        for train, test in split:
            model = fit_model([pool[i][1] for i in train], c)
            for name in by_dataset:
                held = [pool[i][1] for i in test if pool[i][0] == name]
                scores = {
                    "plain hybrid": [ndcg(cl, None) for cl in held],
                    "maxsim": [ndcg(cl, maxsim_scores(cl)) for cl in held],
                    "ltr": [ndcg(cl, model.decision(claim_rows(cl)[0])) for cl in held],
                }
                for s, values in scores.items():
                    per_fold[name][s].append(float(np.mean(values)))
                    if seed == 0:
                        per_question[name][s] += values
    out = {}
    for name, runs in per_fold.items():
        summary = _summary(runs, folds)
        plain = np.asarray(per_question[name]["plain hybrid"])
        for s in systems:  # paired over questions: a second, finer standard error of the gain
            gain = np.asarray(per_question[name][s]) - plain
            summary[s]["gain_se_questions"] = round(float(gain.std() / np.sqrt(len(gain))), 4)
        out[name] = {"folds": folds, "repeats": repeats, "C": c, "systems": summary}
    return out


def _summary(per_fold: dict[str, list[float]], folds: int) -> dict[str, Any]:
    """Mean, spread and gain over plain hybrid of each system's per-fold nDCG@10."""
    plain = np.asarray(per_fold["plain hybrid"])
    out = {}
    for name, values in per_fold.items():
        arr = np.asarray(values)
        gain = arr - plain
        out[name] = {
            "ndcg@10_mean": round(float(arr.mean()), 4),
            "ndcg@10_std": round(float(arr.std()), 4),
            "gain_mean": round(float(gain.mean()), 4),
            "gain_std": round(float(gain.std()), 4),
            # the folds of one repeat are disjoint held-out sets; repeats reuse the same questions and
            # add no independent ones, so the standard error counts one repeat's folds
            "gain_se": round(float(gain.std() / np.sqrt(folds)), 4),
            "folds_better": int((gain > 0).sum()),
            "per_fold": [round(v, 4) for v in values],
        }
    return out


def choose_default(cv: dict[str, Any]) -> str:
    """The reranker whose CV gain over plain hybrid exceeds two standard errors on EVERY dataset, the
    largest mean gain across datasets among those; else none."""
    ok = {}
    for name in ("maxsim", "ltr"):
        gains = [d["systems"][name] for d in cv.values()]
        if all(g["gain_mean"] > 0 and g["gain_mean"] > 2 * g["gain_se"] for g in gains):
            ok[name] = float(np.mean([g["gain_mean"] for g in gains]))
    return max(ok, key=lambda k: ok[k]) if ok else "none"


def measure_latency(dataset: str, claims: list[dict[str, Any]], model: LogisticModel) -> dict[str, Any]:
    """p50/p95 ms the MaxSim and LTR rerankers add per question (top DEPTH, sentence vectors stored at
    ingest, embedding cache cold), with the machine's load average before and after."""
    from ragroute.runtime import caching, providers
    from ragroute.tools.index import sentences as sentence_store
    from ragroute.tools.rerankers import LtrReranker, MaxSimReranker

    ds = load_dataset(dataset)
    index, _, _ = build_index(ds, progress=False)
    sentence_store.register(index)
    embed = providers.embedder()
    rerankers: dict[str, MaxSimReranker | LtrReranker] = {
        "maxsim": MaxSimReranker(embed),
        "ltr": LtrReranker(embed, model),
    }
    times: dict[str, list[float]] = {name: [] for name in rerankers}
    cpu: dict[str, list[float]] = {name: [] for name in rerankers}
    load_before = os.getloadavg()
    try:
        embed(["warm up the embedding model"])
        for cl in claims:
            hits = [h.to_dict() for h in index.search(cl["query"], DEPTH)]
            for name, reranker in rerankers.items():
                caching.set_cache(None)  # cold: no sentence or query vector reused from an earlier call
                started, cpu_started = time.perf_counter(), time.process_time()
                reranker.rerank(cl["query"], hits)
                times[name].append((time.perf_counter() - started) * 1000)
                # CPU time of this process (all its threads): what the reranker costs, whatever the load
                cpu[name].append((time.process_time() - cpu_started) * 1000)
    finally:
        index.close()
    return {
        "questions": len(claims),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **{name: _pct(values) for name, values in times.items()},
        "cpu": {name: _pct(values) for name, values in cpu.items()},
    }


def _pct(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
    }


def to_markdown(result: dict[str, Any]) -> str:
    """One dataset's results as a Markdown report."""
    cv, env, lat = result["cross_validation"], result["environment"], result.get("latency_ms")
    lines = [
        f"# Learned rerank (pointwise logistic LTR) on {result['dataset']}, k-fold over questions",
        "",
        f"{result['claims']} questions with qrels{result['sample_note']}, {env['timestamp']}, 2 CPU cores "
        "shared with other work. Produced by `python -m ragroute.evals.benchmarks.rerank_ltr`. Hybrid top "
        f"{CANDIDATES} chunks; the top {DEPTH} reordered (Context.rerank_depth), the rest keep the fused "
        "order; nDCG@10 over documents.",
        "",
        f"{cv['folds']}-fold CV over the questions of {', '.join(result['pooled'])} pooled (stratified by "
        f"dataset) x {cv['repeats']} repeats; LTR fitted on the training folds only (C={cv['C']}), scored "
        f"here on this dataset's held-out questions. Features: {', '.join(ltr.FEATURES)}.",
        "",
        "| system | nDCG@10 mean (std over folds) | gain over plain (std over folds) | 2 SE (folds) "
        "| 2 SE (paired over questions) | folds better |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in cv["systems"].items():
        lines.append(
            f"| {name} | {s['ndcg@10_mean']:.4f} ({s['ndcg@10_std']:.4f}) | {s['gain_mean']:+.4f} "
            f"({s['gain_std']:.4f}) | {2 * s['gain_se']:.4f} | {2 * s['gain_se_questions']:.4f} | "
            f"{s['folds_better']}/{len(s['per_fold'])} |"
        )
    lines += [
        "",
        f"Default reranker chosen across {', '.join(result['pooled'])}: **{result['default']}** (rule: the "
        "largest mean CV gain over plain hybrid among the rerankers whose gain exceeds two standard errors "
        "on every dataset; else none). The standard error of the decision is over the folds of one "
        "repeat (std of the per-fold gains / sqrt(folds)); the paired per-question one is shown as a check.",
        "",
    ]
    if lat:
        lines.append(
            f"Latency the reranker adds per question ({lat['questions']} distinct questions, top {DEPTH} "
            "hits, sentence vectors stored at ingest, embedding cache cold, load average "
            f"{lat['load_average_before'][0]:.1f} before / {lat['load_average_after'][0]:.1f} after on 2 "
            f"cores): MaxSim p50/p95 {lat['maxsim']['p50']:.1f} / {lat['maxsim']['p95']:.1f} ms, LTR "
            f"{lat['ltr']['p50']:.1f} / {lat['ltr']['p95']:.1f} ms wall clock; CPU time of the process "
            f"(load-independent): MaxSim {lat['cpu']['maxsim']['p50']:.1f} / "
            f"{lat['cpu']['maxsim']['p95']:.1f} ms, LTR {lat['cpu']['ltr']['p50']:.1f} / "
            f"{lat['cpu']['ltr']['p95']:.1f} ms. The wall clock on "
            "this shared, loaded machine is an upper bound, not the reranker's latency on a quiet one."
        )
    else:
        lines.append(
            "Latency: not measured on this dataset (see the SciFact results; the first HotpotQA run timed "
            "the reranker on an overloaded machine, 4.6 s p50, which said nothing about the reranker)."
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--datasets", default="scifact,hotpotqa", help="pooled for CV and the model")
    parser.add_argument("--sample", type=int, default=0, help="a fixed random sample of N questions each")
    parser.add_argument(
        "--latency", type=int, default=100, help="time the rerankers on N questions of the first dataset"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    names = [d for d in args.datasets.split(",") if d]
    by_dataset = {
        d: collect(d, args.refresh, RESULTS / f"rerank_ltr_cache_{d}.json", args.sample) for d in names
    }
    cv = cross_validate(by_dataset, args.folds, args.repeats, args.C)
    pooled = [cl for claims in by_dataset.values() for cl in claims]
    model = fit_model(pooled, args.C)
    default = choose_default(cv)
    model.save(
        ltr.MODEL_PATH,
        trained_on=", ".join(f"{d} ({len(c)} questions with qrels)" for d, c in by_dataset.items())
        + f"; top {DEPTH} hybrid chunks each",
        cross_validated={d: {k: v["ndcg@10_mean"] for k, v in r["systems"].items()} for d, r in cv.items()},
    )
    latency = measure_latency(names[0], by_dataset[names[0]][: args.latency], model) if args.latency else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for d, claims in by_dataset.items():
        result: dict[str, Any] = {
            "environment": environment_info(),
            "dataset": d,
            "claims": len(claims),
            "sample_note": f" (a fixed random sample of {args.sample})" if args.sample else "",
            "pooled": names,
            "cross_validation": cv[d],
            "default": default,
            "latency_ms": latency if d == names[0] else None,
        }
        (out / f"rerank_ltr_{d}.json").write_text(json.dumps(result, indent=2))
        (out / f"rerank_ltr_{d}.md").write_text(to_markdown(result))
        print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
