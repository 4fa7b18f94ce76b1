"""Train and cross-validate the extractive generator's answer-or-abstain model on ClapNQ dev.

1. Run the whole offline graph once per question with answer_threshold=0 (the model never abstains) and
   keep the sources its generate step read and what became of the answer (abstained for another reason?
   a gold passage cited?). Cached in evals/results/answerability_features.json (not committed); the
   features (tools/extractive.answer_features) are computed from the cached sources on every run.
2. Repeated stratified k-fold, grouped by question (questions sharing a gold passage share a fold): fit
   the standardised logistic regression (tools/answerability.fit) on the training folds, choose its
   probability threshold there (inner k-fold, max of min(answered-with-gold, abstained)), measure on the
   held-out fold. The old rule (one hand-fitted threshold on `bare_score`) goes through the same folds.
3. Fit on every question and export tools/models/answerability.json (threshold chosen the same way).

A question is decided right when it is answerable and answered with a gold citation, or unanswerable and
abstained on. Answering depends only on the model's probability once the rest of the graph is fixed, so
every threshold is evaluated from the one cached run.

Run: .venv/bin/python -m ragroute.evals.benchmarks.answerability_cv [--repeats 20] [--refresh]
Writes evals/results/answerability_cv.{json,md}, answerability_tradeoff.{png,json} and the model file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ragroute.evals.datasets import load_dataset
from ragroute.evals.runner import build_index, environment_info, run_graph_eval
from ragroute.tools.answerability import FEATURES, MODEL_PATH
from ragroute.tools.learned import fit

RESULTS = Path(__file__).resolve().parents[1] / "results"
CACHE = RESULTS / "answerability_features.json"
GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
FOLDS = 5
TARGET = 0.82


def collect(refresh: bool = False) -> list[dict[str, Any]]:
    """Per question: text, answerable, group, the sources generate read (first attempt), abstained
    (threshold 0) and gold cited; cached."""
    if CACHE.is_file() and not refresh:
        return list(json.loads(CACHE.read_text())["questions"])
    from ragroute.api import astream
    from ragroute.runtime.sync import run_sync

    ds = load_dataset("clapnq")
    index, _, _ = build_index(ds, progress=False)
    seen: dict[str, list[dict[str, Any]]] = {}

    async def _run(question: str, **cfg: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        sources: list[dict[str, Any]] = []
        async for part in astream(question, raw=True, **cfg):
            if part["type"] == "update":
                if part["data"] and part["data"].get("sources") is not None:
                    sources = part["data"]["sources"]
                if part["node"] == "generate":
                    seen.setdefault(question, [_compact(s) for s in sources])  # the first attempt's
            elif part["type"] == "result":
                out = part["data"]
        return out

    def ask(question: str, **cfg: Any) -> dict[str, Any]:
        return run_sync(_run(question, **cfg))

    try:
        cfg = {"answer_threshold": 0.0, "cache": False}
        run = run_graph_eval(ds, cfg, index=index, ask=ask, progress=False)
    finally:
        index.close()
    queries = {q.qid: q for q in ds.queries}
    rows = []
    for rec in run["records"]:
        q = queries[rec["qid"]]
        gold = list(q.gold_doc_ids or [])
        rows.append(
            {
                "qid": rec["qid"],
                "question": rec["question"],
                "answerable": rec["answerable"] is not False,
                "group": gold[0] if gold else rec["qid"],
                "sources": seen.get(rec["question"], []),
                "abstained": bool(rec["abstained"]),
                "gold_cited": rec["metrics"].get("answered_with_gold_citation") == 1.0,
            }
        )
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps({"environment": environment_info(), "questions": rows}, indent=1))
    return rows


def _compact(source: dict[str, Any]) -> dict[str, Any]:
    """What answer_features reads of a numbered source."""
    meta = source.get("metadata") or {}
    return {
        "n": source["n"],
        "doc_id": source.get("doc_id"),
        "title": source.get("title") or meta.get("title") or "",
        "section": source.get("section") or meta.get("section") or "",
        "text": source.get("text", ""),
    }


def with_features(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with `features`: tools/extractive.answer_features of its question and sources (empty
    when the sentence-score floor abstained before the model would be asked, as generate does)."""
    from ragroute.runtime import providers
    from ragroute.tools.extractive import answer_features, score_sentences

    embed = providers.embedder()
    out = []
    for row in rows:
        scored = score_sentences(row["question"], row["sources"], embed) if row["sources"] else []
        feats = answer_features(row["question"], scored, row["sources"], embed) if scored else {}
        out.append({**row, "features": feats})
    return out


def rates(answer: np.ndarray, ans: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """(answerable answered with a gold citation, unanswerable abstained) for boolean decisions."""
    return float((answer & gold)[ans].mean()), float((~answer)[~ans].mean())


def curve(prob: np.ndarray, ok0: np.ndarray, ans: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Rates at every threshold of GRID: rows (answered with gold, abstained)."""
    return np.array([rates(ok0 & (prob >= t), ans, gold) for t in GRID])


def best_threshold(prob: np.ndarray, ok0: np.ndarray, ans: np.ndarray, gold: np.ndarray) -> float:
    """The GRID threshold maximising min(answered with gold, abstained); ties: the middle one."""
    worst = curve(prob, ok0, ans, gold).min(axis=1)
    ties = np.flatnonzero(worst >= worst.max() - 1e-9)
    return float(GRID[ties[len(ties) // 2]])


def _folds(ans: np.ndarray, groups: np.ndarray, seed: int, k: int = FOLDS) -> list[np.ndarray]:
    from sklearn.model_selection import StratifiedGroupKFold

    split = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [test for _, test in split.split(np.zeros(len(ans)), ans, groups)]


def _oof(
    x: np.ndarray, y: np.ndarray, ans: np.ndarray, groups: np.ndarray, seed: int, c: float
) -> np.ndarray:
    """Out-of-fold probabilities (each question predicted by a model that never saw it)."""
    prob = np.zeros(len(y))
    for test in _folds(ans, groups, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        prob[test] = fit(x[train], y[train], FEATURES, c=c).probabilities(x[test])
    return prob


def cross_validate(data: dict[str, np.ndarray], repeats: int, c: float) -> dict[str, Any]:
    """Repeated grouped k-fold: model and old rule, thresholds chosen on training folds only."""
    x, y, ans, gold, ok0, groups = (data[k] for k in ("x", "y", "ans", "gold", "ok0", "groups"))
    bare = x[:, FEATURES.index("bare_score")]
    per_repeat: dict[str, list[tuple[float, float]]] = {"model": [], "old rule": []}
    chosen: list[float] = []
    curves = []
    for seed in range(repeats):
        decide = {"model": np.zeros(len(y), bool), "old rule": np.zeros(len(y), bool)}
        prob = np.zeros(len(y))
        for test in _folds(ans, groups, seed):
            train = np.setdiff1d(np.arange(len(y)), test)
            inner = _oof(x[train], y[train], ans[train], groups[train], seed + 1000, c)
            t = best_threshold(inner, ok0[train], ans[train], gold[train])
            chosen.append(t)
            prob[test] = fit(x[train], y[train], FEATURES, threshold=t, c=c).probabilities(x[test])
            decide["model"][test] = ok0[test] & (prob[test] >= t)
            t_old = best_threshold(bare[train], ok0[train], ans[train], gold[train])
            decide["old rule"][test] = ok0[test] & (bare[test] >= t_old)
        curves.append(curve(prob, ok0, ans, gold))
        for name, answer in decide.items():
            per_repeat[name].append(rates(answer, ans, gold))
    out: dict[str, Any] = {"repeats": repeats, "folds": FOLDS, "C": c}
    for name, rows in per_repeat.items():
        arr = np.array(rows)
        out[name] = {
            "answered_with_gold_mean": round(float(arr[:, 0].mean()), 3),
            "answered_with_gold_std": round(float(arr[:, 0].std()), 3),
            "abstained_mean": round(float(arr[:, 1].mean()), 3),
            "abstained_std": round(float(arr[:, 1].std()), 3),
        }
    out["model"]["chosen_threshold_p10_p50_p90"] = [
        round(float(v), 2) for v in np.percentile(chosen, [10, 50, 90])
    ]
    mean_curve = np.mean(curves, axis=0)
    out["tradeoff"] = [
        {"threshold": float(t), "answered_with_gold": round(float(a), 3), "abstained": round(float(b), 3)}
        for t, (a, b) in zip(GRID, mean_curve, strict=True)
    ]
    return out


def arrays(rows: list[dict[str, Any]], label: str) -> dict[str, np.ndarray]:
    """Feature matrix and flags; `label` 'answerable' or 'answerable_and_cited' (what y means)."""
    ans = np.array([r["answerable"] for r in rows])
    gold = np.array([r["gold_cited"] for r in rows])
    y = ans & gold if label == "answerable_and_cited" else ans
    return {
        "x": np.array([[float(r["features"].get(f, 0.0)) for f in FEATURES] for r in rows]),
        "y": y,
        "ans": ans,
        "gold": gold,
        "ok0": np.array([not r["abstained"] for r in rows]),
        "groups": np.array([r["group"] for r in rows]),
    }


def plot(tradeoff: list[dict[str, Any]], chosen: float, path: Path) -> None:
    """The cross-validated trade-off curve as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["threshold"] for r in tradeoff]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.plot(t, [r["answered_with_gold"] for r in tradeoff], label="answerable answered with gold citation")
    left.plot(t, [r["abstained"] for r in tradeoff], label="unanswerable abstained")
    left.axhline(TARGET, color="grey", ls=":", label=f"target {TARGET:.2f}")
    left.axvline(chosen, color="black", ls="--", label=f"default threshold {chosen:.2f}")
    left.set(xlabel="answer threshold (probability)", ylabel="share of questions", ylim=(0, 1.02))
    left.legend(fontsize=8, loc="lower left")
    right.plot([r["abstained"] for r in tradeoff], [r["answered_with_gold"] for r in tradeoff], marker=".")
    right.axhline(TARGET, color="grey", ls=":")
    right.axvline(TARGET, color="grey", ls=":")
    right.set(xlabel="unanswerable abstained", ylabel="answerable answered with gold citation")
    fig.suptitle("ClapNQ dev, answerability model, out-of-fold (grouped 5-fold CV, mean over repeats)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pm(stats: dict[str, Any], key: str) -> str:
    return f"{stats[key + '_mean']:.3f} (std {stats[key + '_std']:.3f})"


def to_markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown report."""
    env, cv = result["environment"], result["cross_validation"]
    m, old = cv["model"], cv["old rule"]
    hit = m["answered_with_gold_mean"] >= TARGET and m["abstained_mean"] >= TARGET
    lines = [
        "# Answerability model (logistic regression) on ClapNQ dev, cross-validated",
        "",
        f"{result['questions']} questions ({result['answerable']} answerable), {env['timestamp']}, "
        f"{env.get('cpu_count', '?')} CPU cores shared with other work. Produced by "
        "`python -m ragroute.evals.benchmarks.answerability_cv` (offline graph, extractive generator; "
        "one graph run per question, cached, then every fit and threshold from that run).",
        "",
        f"Label: `{result['label']}`. Features: {', '.join(result['features'])}. "
        f"{cv['folds']}-fold StratifiedGroupKFold (questions sharing a gold passage in one fold), "
        f"{cv['repeats']} repeats; thresholds chosen on the training folds only (inner {FOLDS}-fold).",
        "",
        "| decision | answered with gold citation | unanswerable abstained |",
        "|---|---|---|",
        f"| logistic model (C={cv['C']}) | {_pm(m, 'answered_with_gold')} | {_pm(m, 'abstained')} |",
        f"| old rule (bare_score threshold) | {_pm(old, 'answered_with_gold')} | {_pm(old, 'abstained')} |",
        f"| ceiling (threshold 0: the model never abstains) | {result['ceiling_answered_with_gold']:.3f}"
        f" | {result['ceiling_abstained']:.3f} |",
        "",
        f"Target >= {TARGET:.2f} on both: **{'met' if hit else 'MISSED'}** (cross-validated). "
        f"Chosen thresholds p10/p50/p90 over folds: {m['chosen_threshold_p10_p50_p90']}; the shipped "
        f"model's threshold (chosen the same way on all questions): {result['default_threshold']:.2f}.",
        "",
        "Trade-off (out-of-fold probabilities, mean over repeats): `answerability_tradeoff.png`, "
        "`answerability_tradeoff.json`.",
        "",
        "| threshold | answered with gold | abstained |",
        "|---|---|---|",
    ]
    for row in cv["tradeoff"][::5]:
        lines.append(f"| {row['threshold']:.2f} | {row['answered_with_gold']:.3f} | {row['abstained']:.3f} |")
    lines += ["", "Other settings tried (same folds):", ""]
    for alt in result.get("alternatives", []):
        am = alt["model"]
        lines.append(
            f"- label `{alt['label']}`, C={alt['C']}: answered with gold "
            f"{am['answered_with_gold_mean']:.3f}, abstained {am['abstained_mean']:.3f}"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--refresh", action="store_true", help="rerun the graph instead of the cache")
    parser.add_argument("--label", default="answerable", choices=["answerable", "answerable_and_cited"])
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--features", default="", help="comma list: fit on these of FEATURES only")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--no-export", action="store_true", help="leave tools/models/answerability.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    global FEATURES
    if args.features:  # a subset (the model file names what it reads)
        FEATURES = tuple(f for f in FEATURES if f in args.features.split(","))  # type: ignore[assignment]
    rows = with_features(collect(args.refresh))
    data = arrays(rows, args.label)
    cv = cross_validate(data, args.repeats, args.C)
    alternatives = []
    for label in ("answerable", "answerable_and_cited"):
        for c in (0.1, 1.0, 10.0):
            if (label, c) != (args.label, args.C):
                alt = cross_validate(arrays(rows, label), max(3, args.repeats // 4), c)
                alternatives.append({"label": label, "C": c, "model": alt["model"]})
    oof = np.mean(
        [_oof(data["x"], data["y"], data["ans"], data["groups"], s, args.C) for s in range(5)], axis=0
    )
    threshold = best_threshold(oof, data["ok0"], data["ans"], data["gold"])
    model = fit(data["x"], data["y"], FEATURES, threshold=threshold, c=args.C)
    ceiling = rates(data["ok0"], data["ans"], data["gold"])
    result = {
        "environment": environment_info(),
        "questions": len(rows),
        "answerable": int(data["ans"].sum()),
        "label": args.label,
        "features": list(FEATURES),
        "default_threshold": threshold,
        "ceiling_answered_with_gold": round(ceiling[0], 3),
        "ceiling_abstained": round(ceiling[1], 3),
        "cross_validation": cv,
        "alternatives": alternatives,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_export:
        about = {
            "trained_on": f"ClapNQ dev ({len(rows)} questions, label {args.label})",
            "cross_validated": {k: cv["model"][k] for k in ("answered_with_gold_mean", "abstained_mean")},
        }
        model.save(MODEL_PATH, **about)
    (out / "answerability_tradeoff.json").write_text(json.dumps(cv["tradeoff"], indent=1))
    plot(cv["tradeoff"], threshold, out / "answerability_tradeoff.png")
    (out / "answerability_cv.json").write_text(json.dumps(result, indent=2))
    (out / "answerability_cv.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
