"""Learned rerank (pointwise logistic LTR) vs MaxSim vs plain hybrid on SciFact train, k-fold over claims.

1. For every SciFact train claim with qrels: the hybrid search's top CANDIDATES chunks (fused and per-source
   ranks and scores), the best sentence cosine of the top DEPTH (what MaxSim and the LTR features read; the
   graph reranks rerank_depth=10 of them) and the MaxSim reranker's time. Cached in
   evals/results/rerank_ltr_cache.json (not committed; --refresh rebuilds it).
2. Repeated k-fold over claims: fit tools/learned.fit on the training claims' top-DEPTH chunks (relevant:
   the chunk's document is in the claim's qrels), rerank the held-out claims' top DEPTH, the rest keeps its
   fused order; nDCG@10 over documents (a document's chunks deduplicated). Per fold: plain, MaxSim, LTR.
3. Fit on every claim, export tools/models/rerank_ltr.json; the default reranker is whichever system
   raises nDCG@10 over plain hybrid under CV (mean gain above two standard errors of the per-fold gains),
   else "none".

Run: .venv/bin/python -m ragroute.evals.benchmarks.rerank_ltr [--folds 5] [--repeats 4] [--refresh]
Writes evals/results/rerank_ltr.{json,md} and tools/models/rerank_ltr.json.
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


def collect(dataset: str, refresh: bool = False, cache: Path = CACHE) -> list[dict[str, Any]]:
    """Per claim: qid, qrels, compact hits, best sentence cosines of the top DEPTH, MaxSim ms; cached."""
    if cache.is_file() and not refresh:
        return list(json.loads(cache.read_text())["claims"])
    from ragroute.runtime import caching, providers
    from ragroute.tools.index import sentences as sentence_store
    from ragroute.tools.rerankers import MaxSimReranker, best_sentence_similarity

    ds = load_dataset(dataset)
    index, _, _ = build_index(ds, progress=False)
    sentence_store.register(index)  # the reranker reads the sentence vectors stored at ingest
    embed = providers.embedder()
    maxsim = MaxSimReranker(embed)
    rows = []
    try:
        for q in ds.queries:
            if not ds.qrels.get(q.qid):
                continue
            hits = [h.to_dict() for h in index.search(q.text, CANDIDATES)]
            caching.set_cache(None)  # cold: no sentence reused from an earlier claim
            started = time.perf_counter()
            maxsim.rerank(q.text, hits[:DEPTH])
            ms = (time.perf_counter() - started) * 1000
            sims = best_sentence_similarity(embed, q.text, hits[:DEPTH])
            compact = [{k: h.get(k) for k in HIT_KEYS} | {"text": ""} for h in hits]
            rows.append(
                {
                    "qid": q.qid,
                    "query": q.text,
                    "qrels": ds.qrels[q.qid],
                    "hits": compact,
                    "maxsim": [round(float(s), 5) for s in sims],
                    "maxsim_ms": round(ms, 2),
                }
            )
    finally:
        index.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"dataset": dataset, "environment": environment_info(), "claims": rows}))
    return rows


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


def cross_validate(claims: list[dict[str, Any]], folds: int, repeats: int, c: float) -> dict[str, Any]:
    """Per-fold nDCG@10 of plain, MaxSim and LTR (LTR fitted on the other folds' claims only)."""
    from sklearn.model_selection import KFold

    per_fold: dict[str, list[float]] = {"plain hybrid": [], "maxsim": [], "ltr": []}
    for seed in range(repeats):
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(claims):
            model = fit_model([claims[i] for i in train], c)
            held = [claims[i] for i in test]
            per_fold["plain hybrid"].append(float(np.mean([ndcg(cl, None) for cl in held])))
            per_fold["maxsim"].append(float(np.mean([ndcg(cl, maxsim_scores(cl)) for cl in held])))
            per_fold["ltr"].append(
                float(np.mean([ndcg(cl, model.decision(claim_rows(cl)[0])) for cl in held]))
            )
    plain = np.asarray(per_fold["plain hybrid"])
    out: dict[str, Any] = {"folds": folds, "repeats": repeats, "C": c, "systems": {}}
    for name, values in per_fold.items():
        arr = np.asarray(values)
        gain = arr - plain
        out["systems"][name] = {
            "ndcg@10_mean": round(float(arr.mean()), 4),
            "ndcg@10_std": round(float(arr.std()), 4),
            "gain_mean": round(float(gain.mean()), 4),
            "gain_std": round(float(gain.std()), 4),
            # folds of one repeat share claims: the standard error counts independent repeats only
            "gain_se": round(float(gain.std() / np.sqrt(max(1, repeats))), 4),
            "folds_better": int((gain > 0).sum()),
            "per_fold": [round(v, 4) for v in values],
        }
    return out


def ltr_ms(claims: list[dict[str, Any]], model: LogisticModel) -> list[float]:
    """What LTR adds on top of the best-sentence cosines (features and the dot product), per claim."""
    out = []
    for cl in claims:
        head = cl["hits"][:DEPTH]
        started = time.perf_counter()
        model.decision(ltr.features(cl["query"], head, np.asarray(cl["maxsim"][: len(head)])))
        out.append((time.perf_counter() - started) * 1000)
    return out


def choose_default(systems: dict[str, Any]) -> str:
    """The system whose CV gain over plain hybrid is largest and above two standard errors, else none."""
    name_of = {"maxsim": "maxsim", "ltr": "ltr"}
    ok = {
        name: s["gain_mean"]
        for name, s in systems.items()
        if name in name_of and s["gain_mean"] > 0 and s["gain_mean"] > 2 * s["gain_se"]
    }
    return name_of[max(ok, key=lambda k: ok[k])] if ok else "none"


def to_markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown report."""
    cv, env, lat = result["cross_validation"], result["environment"], result["latency_ms"]
    lines = [
        f"# Learned rerank (pointwise logistic LTR) on {result['dataset']}, k-fold over questions",
        "",
        f"{result['claims']} claims with qrels, {env['timestamp']}, 2 CPU cores shared with other work. "
        "Produced by `python -m ragroute.evals.benchmarks.rerank_ltr`. Hybrid top "
        f"{CANDIDATES} chunks; the top {DEPTH} reordered (Context.rerank_depth), the rest keep the fused "
        "order; nDCG@10 over documents.",
        "",
        f"{cv['folds']}-fold CV over claims x {cv['repeats']} repeats (LTR fitted on the training folds "
        f"only, C={cv['C']}). Features: {', '.join(ltr.FEATURES)}.",
        "",
        "| system | nDCG@10 mean (std over folds) | gain over plain (std) | folds better | p50/p95 ms |",
        "|---|---|---|---|---|",
    ]
    for name, s in cv["systems"].items():
        ms = lat.get(name)
        ms_text = f"{ms['p50']:.1f} / {ms['p95']:.1f}" if ms else "0"
        lines.append(
            f"| {name} | {s['ndcg@10_mean']:.4f} ({s['ndcg@10_std']:.4f}) | {s['gain_mean']:+.4f} "
            f"({s['gain_std']:.4f}) | {s['folds_better']}/{len(s['per_fold'])} | {ms_text} |"
        )
    lines += [
        "",
        f"Default reranker chosen: **{result['default']}** (rule: the largest mean CV gain over plain "
        "hybrid that exceeds two standard errors; else none).",
        "",
        "Latency: MaxSim's time is the reranker call with the sentence vectors stored at ingest, cache "
        "cold; LTR's is that same best-sentence step plus its features and dot product "
        f"(p50/p95 {lat['ltr_extra']['p50']:.2f} / {lat['ltr_extra']['p95']:.2f} ms on top).",
        "",
    ]
    for name, check in result.get("held_out", {}).items():
        lines.append(
            f"- {name} ({check['claims']} questions, never trained on): "
            + ", ".join(f"{k} {v:.4f}" for k, v in check["ndcg@10"].items())
        )
    lines.append("")
    return "\n".join(lines)


def _pct(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
    }


def held_out(dataset: str, model: LogisticModel, refresh: bool) -> dict[str, Any]:
    """nDCG@10 of plain, MaxSim and the exported LTR on a dataset it was not fitted on."""
    claims = collect(dataset, refresh, RESULTS / f"rerank_ltr_cache_{dataset}.json")
    return {
        "claims": len(claims),
        "ndcg@10": {
            "plain": float(np.mean([ndcg(cl, None) for cl in claims])),
            "maxsim": float(np.mean([ndcg(cl, maxsim_scores(cl)) for cl in claims])),
            "ltr": float(np.mean([ndcg(cl, model.decision(claim_rows(cl)[0])) for cl in claims])),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--dataset", default="scifact", help="what to train and cross-validate on")
    parser.add_argument("--held-out", default="", help="comma list, e.g. scifact_dev,hotpotqa")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = CACHE if args.dataset == "scifact" else RESULTS / f"rerank_ltr_cache_{args.dataset}.json"
    claims = collect(args.dataset, args.refresh, cache)
    cv = cross_validate(claims, args.folds, args.repeats, args.C)
    model = fit_model(claims, args.C)
    default = choose_default(cv["systems"])
    result: dict[str, Any] = {
        "environment": environment_info(),
        "dataset": args.dataset,
        "claims": len(claims),
        "cross_validation": cv,
        "default": default,
        "latency_ms": {
            "maxsim": _pct([cl["maxsim_ms"] for cl in claims]),
            "ltr": _pct([cl["maxsim_ms"] + t for cl, t in zip(claims, ltr_ms(claims, model), strict=True)]),
            "ltr_extra": _pct(ltr_ms(claims, model)),
        },
        "held_out": {d: held_out(d, model, args.refresh) for d in filter(None, args.held_out.split(","))},
    }
    model.save(
        ltr.MODEL_PATH,
        trained_on=f"{args.dataset} ({len(claims)} questions with qrels), top {DEPTH} hybrid chunks each",
        cross_validated={k: v["ndcg@10_mean"] for k, v in cv["systems"].items()},
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rerank_ltr.json").write_text(json.dumps(result, indent=2))
    (out / "rerank_ltr.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
