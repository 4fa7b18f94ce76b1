"""Fitting the learned router (scikit-learn, training only) from silver-labelled questions.

`question_features` computes, for each question, exactly what classify computes at query time (the
probe search through the run's search path, the structural features, the index's query vector).
`fit_router` fits a standardised multinomial logistic regression and chooses the cost-aware thresholds
by inner cross-validation; `cross_validate` measures the whole procedure on held-out folds (grouped by
question, stratified by dataset). The result is a `RouterModel` (tools/router_model.py), applied with
numpy at query time.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from ragroute.context import Context
from ragroute.evals import metrics as M
from ragroute.runtime import providers
from ragroute.runtime.retrieval import search
from ragroute.tools.router_model import PROBE_K, ROUTES, STRUCTURAL, RouterModel, features

C_GRID = (0.03, 0.1, 0.3)
THRESHOLD_GRID = tuple(round(t, 2) for t in np.linspace(0.05, 0.95, 19))
COST_WEIGHT = 0.03  # solve-rate points one route's worth of multihop latency must buy (see choose_thresholds)
INNER_FOLDS = 3


@dataclasses.dataclass
class Question:
    """One labelled question: features, query vector, per-route outcomes and its silver label."""

    dataset: str
    qid: str
    text: str
    feats: dict[str, Any]
    vector: list[float]
    solved: dict[str, float]  # route -> 1.0 when its final context held the gold evidence
    latency_ms: dict[str, float]
    label: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def question_features(index: Any, texts: Sequence[str]) -> list[tuple[dict[str, Any], list[float]]]:
    """(structural features, query vector) per question, computed as classify computes them."""
    ctx = Context(index_dir=str(getattr(index, "path", "") or ".") or None, all_access=True, cache=False)
    out = []
    with providers.using(dataclasses.replace(providers.current() or providers.Providers(), index=index)):
        for text in texts:
            probe = search(ctx, text, PROBE_K)
            out.append((features(text, probe), list(index.query_vector(text))))
    return out


def embedding_name(index: Any) -> str | None:
    """The name of the index's embedder (what the model's vectors must come from)."""
    return getattr(getattr(index, "embedder", None), "name", None)


def design(
    rows: Sequence[Question], use_embedding: bool = True, structural: Sequence[str] = STRUCTURAL
) -> np.ndarray:
    """The feature matrix: the structural features, then the embedding."""
    x = np.asarray([[float(r.feats.get(n, 0.0)) for n in structural] for r in rows], dtype=float)
    x = x.reshape(len(rows), len(structural))
    if use_embedding:
        x = np.hstack([x, np.asarray([r.vector for r in rows], dtype=float)])
    return x


def _fit_lr(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression  # training only

    mean = x.mean(axis=0)
    std = x.std(axis=0)
    scale = np.where(std > 1e-9, std, 1.0)
    coef = np.zeros((len(ROUTES), x.shape[1]))
    if len(set(y.tolist())) == 1:  # one label only: that route, whatever the features
        intercept = np.full(len(ROUTES), -30.0)
        intercept[int(y[0])] = 0.0
        return mean, scale, coef, intercept
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    clf.fit((x - mean) / scale, y)
    intercept = np.full(len(ROUTES), -30.0)  # a route never seen in training is never predicted
    for i, cls in enumerate(clf.classes_):
        if len(clf.classes_) == 2:  # binary sklearn: one row for the second class
            sign = 1.0 if i == 1 else -1.0
            coef[cls], intercept[cls] = sign * clf.coef_[0] / 2, sign * clf.intercept_[0] / 2
        else:
            coef[cls], intercept[cls] = clf.coef_[i], clf.intercept_[i]
    return mean, scale, coef, intercept


def _labels(rows: Sequence[Question]) -> np.ndarray:
    return np.asarray([ROUTES.index(r.label) for r in rows])


def route_costs(rows: Sequence[Question]) -> dict[str, float]:
    """Each route's median latency relative to multihop's (multihop = 1); the median, since the first
    questions of a run pay for loading models."""
    medians = {r: M.percentile([q.latency_ms[r] for q in rows], 50) or 0.0 for r in ROUTES}
    top = medians["multihop"] or max(medians.values()) or 1.0
    return {r: round(medians[r] / top, 4) for r in ROUTES}


def utility(rows: Sequence[Question], routes: Sequence[str], costs: dict[str, float], weight: float) -> float:
    """Share of questions whose chosen route held the gold evidence, minus `weight` x relative cost."""
    solved = np.mean([q.solved[r] for q, r in zip(rows, routes, strict=True)])
    cost = np.mean([costs[r] for r in routes])
    return float(solved - weight * cost)


def _decide(probs: np.ndarray, t_multi: float, t_expand: float) -> list[str]:
    out = []
    for p in probs:
        if p[2] >= t_multi:
            out.append("multihop")
        elif p[1] + p[2] >= t_expand:
            out.append("expand")
        else:
            out.append("simple")
    return out


def choose_thresholds(
    rows: Sequence[Question], probs: np.ndarray, weight: float = COST_WEIGHT
) -> tuple[dict[str, float], float]:
    """The (multihop, expand) probability cuts with the best utility on these (held-out) predictions."""
    costs = route_costs(rows)
    best: tuple[float, float, float] | None = None
    for t_m, t_e in itertools.product(THRESHOLD_GRID, THRESHOLD_GRID):
        u = utility(rows, _decide(probs, t_m, t_e), costs, weight)
        # ties: the higher cuts (cheaper routes)
        if best is None or u > best[0] + 1e-12 or (abs(u - best[0]) <= 1e-12 and (t_m, t_e) > best[1:]):
            best = (u, t_m, t_e)
    assert best is not None
    return {"multihop": float(best[1]), "expand": float(best[2])}, best[0]


def _folds(rows: Sequence[Question], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds grouped by question text, stratified by dataset and label."""
    from sklearn.model_selection import StratifiedGroupKFold

    strata = [f"{r.dataset}:{r.label}" for r in rows]
    groups = [r.text.strip().lower() for r in rows]
    n_groups = len(set(groups))
    k = max(2, min(k, n_groups))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(rows)), strata, groups))


def _oof_probs(rows: Sequence[Question], x: np.ndarray, c: float, k: int, seed: int) -> np.ndarray:
    y = _labels(rows)
    probs = np.zeros((len(rows), len(ROUTES)))
    for train, test in _folds(rows, k, seed):
        mean, scale, coef, intercept = _fit_lr(x[train], y[train], c)
        z = ((x[test] - mean) / scale) @ coef.T + intercept
        z -= z.max(axis=1, keepdims=True)
        probs[test] = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return probs


def fit_router(
    rows: Sequence[Question],
    *,
    embedding_model: str | None,
    use_embedding: bool = True,
    structural: Sequence[str] = STRUCTURAL,
    weight: float = COST_WEIGHT,
    seed: int = 0,
    about: dict[str, Any] | None = None,
) -> RouterModel:
    """Fit on `rows`: C and the thresholds chosen by inner cross-validation on these rows only."""
    x = design(rows, use_embedding, structural)
    y = _labels(rows)
    best: tuple[float, float, dict[str, float]] | None = None
    if len(set(y)) > 1 and len(rows) >= 2 * INNER_FOLDS:
        for c in C_GRID:
            thresholds, u = choose_thresholds(rows, _oof_probs(rows, x, c, INNER_FOLDS, seed), weight)
            if best is None or u > best[0]:
                best = (u, c, thresholds)
    c, thresholds = (best[1], best[2]) if best else (C_GRID[0], {"multihop": 0.5, "expand": 0.5})
    mean, scale, coef, intercept = _fit_lr(x, y, c)
    return RouterModel(
        classes=ROUTES,
        structural=tuple(structural),
        embedding_model=embedding_model if use_embedding else None,
        embedding_dim=len(rows[0].vector) if use_embedding else 0,
        mean=mean,
        scale=scale,
        coef=coef,
        intercept=intercept,
        thresholds=thresholds,
        about={"C": c, "cost_weight": weight, "route_costs": route_costs(rows), **(about or {})},
    )


def cross_validate(
    rows: Sequence[Question],
    *,
    folds: int = 5,
    seed: int = 0,
    use_embedding: bool = True,
    structural: Sequence[str] = STRUCTURAL,
    weight: float = COST_WEIGHT,
) -> list[dict[str, Any]]:
    """Out-of-fold route and probabilities per question (each fold's model never saw its questions)."""
    out: list[dict[str, Any]] = [{} for _ in rows]
    for i, (train, test) in enumerate(_folds(rows, folds, seed)):
        part = [rows[j] for j in train]
        model = fit_router(
            part,
            embedding_model="cv",
            use_embedding=use_embedding,
            structural=structural,
            weight=weight,
            seed=seed,
        )
        x = design([rows[j] for j in test], use_embedding, structural)
        for j, p in zip(test, model.probabilities(x), strict=True):
            out[j] = {"fold": i, "route": model.decide(p), "probs": [round(float(v), 4) for v in p]}
    return out


def labelled_questions(
    ds: Any, queries: Sequence[Any], index: Any, *, cache: Any, progress: bool = False
) -> list[Question]:
    """Silver-labelled questions of one dataset (route outcomes cached in `cache`) with their features."""
    from ragroute.evals.benchmarks import router_silver as silver

    rows = silver.questions(silver.route_outcomes(ds, queries, index=index, cache=cache, progress=progress))
    computed = question_features(index, [r["question"] for r in rows])
    return [
        Question(
            dataset=r["dataset"],
            qid=r["qid"],
            text=r["question"],
            feats=feats,
            vector=vector,
            solved={k: float(bool(o["solved"])) for k, o in r["routes"].items()},
            latency_ms={k: float(o["latency_ms"]) for k, o in r["routes"].items()},
            label=r["label"],
            extra={
                "has_gold": r["routes"]["simple"]["solved"] is not None,
                "single_same_size": {k: o.get("single_same_size") for k, o in r["routes"].items()},
                "context_chunks": {k: o.get("context_chunks") for k, o in r["routes"].items()},
            },
        )
        for r, (feats, vector) in zip(rows, computed, strict=True)
    ]
