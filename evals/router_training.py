"""Fitting the learned router (scikit-learn, training only) from silver-labelled questions.

`question_features` computes, for each question, exactly what classify computes at query time (the
probe search through the run's search path, the structural features, the index's query vector).
`fit_router` fits one standardised logistic regression per route (does that route's final context
hold the gold evidence; questions without gold passages left out) and routes to the best P(route) minus
a cost weight times the route's relative latency; C and the cost weight are chosen by inner
cross-validation (the largest weight whose held-out share solved stays within RECALL_TOLERANCE of the
best forced route in every dataset). `cross_validate` measures the whole procedure on held-out folds
(grouped by question, stratified by dataset). The result is a `RouterModel` (tools/router_model.py),
applied with numpy at query time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from ragroute.context import Context
from ragroute.evals import metrics as M
from ragroute.runtime import providers
from ragroute.runtime.retrieval import search
from ragroute.tools.router_model import PROBE_K, ROUTES, STRUCTURAL, RouterModel, features

C_GRID = (0.01, 0.03, 0.1)
# cost weights (share solved that one route's worth of multihop latency must buy) the training tries
WEIGHT_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
# share solved, per dataset, the cheapest acceptable weight may give up against the best forced route
RECALL_TOLERANCE = 0.01  # 0.015 let inner-CV optimism through: 2.7 points lost out-of-fold
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


def _fit_solvers(
    x: np.ndarray, solved: np.ndarray, c: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One logistic regression per route: does that route's final context hold the gold evidence."""
    from sklearn.linear_model import LogisticRegression  # training only

    mean = x.mean(axis=0)
    std = x.std(axis=0)
    scale = np.where(std > 1e-9, std, 1.0)
    coef = np.zeros((len(ROUTES), x.shape[1]))
    intercept = np.zeros(len(ROUTES))
    z = (x - mean) / scale
    for i in range(len(ROUTES)):
        y = solved[:, i]
        if len(set(y.tolist())) == 1:  # always or never solved in training: that, whatever the features
            intercept[i] = 12.0 if y[0] else -12.0
            continue
        clf = LogisticRegression(C=c, max_iter=3000).fit(z, y)
        coef[i], intercept[i] = clf.coef_[0], clf.intercept_[0]
    return mean, scale, coef, intercept


def _labels(rows: Sequence[Question]) -> np.ndarray:
    return np.asarray([ROUTES.index(r.label) for r in rows])


def _solved(rows: Sequence[Question]) -> np.ndarray:
    return np.asarray([[q.solved[r] for r in ROUTES] for q in rows], dtype=float)


def _has_gold(rows: Sequence[Question]) -> np.ndarray:
    # a question without gold passages is "unsolved" by every route: no evidence about which route to take
    return np.asarray([bool(q.extra.get("has_gold", True)) for q in rows])


def route_costs(rows: Sequence[Question]) -> dict[str, float]:
    """Each route's median latency relative to multihop's (multihop = 1); the median, since the first
    questions of a run pay for loading models."""
    medians = {r: M.percentile([q.latency_ms[r] for q in rows], 50) or 0.0 for r in ROUTES}
    top = medians["multihop"] or max(medians.values()) or 1.0
    return {r: round(min(1.0, medians[r] / top), 4) for r in ROUTES}


def decide(probs: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """Route index per row: the best P(route solves) - penalty, ties to the cheaper route (as
    RouterModel.decide)."""
    return np.argmax(np.round(probs - penalty, 9), axis=1)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One decision rule (C and cost weight) scored on held-out predictions."""

    c: float
    weight: float
    solved: float  # share of all rows whose route held the gold evidence
    cost: float  # mean relative cost of the routes taken
    by_dataset: dict[str, float]  # share solved among each dataset's questions with gold passages


def _gold_masks(rows: Sequence[Question]) -> dict[str, np.ndarray]:
    gold = _has_gold(rows)
    names = np.asarray([q.dataset for q in rows])
    masks = {d: (names == d) & gold for d in dict.fromkeys(names.tolist())}
    return {d: m for d, m in masks.items() if m.any()}


def forced_recall(rows: Sequence[Question]) -> dict[str, dict[str, float]]:
    """Per dataset, the share solved when every question is forced onto each route."""
    solved = _solved(rows)
    return {
        d: {r: float(solved[m, i].mean()) for i, r in enumerate(ROUTES)} for d, m in _gold_masks(rows).items()
    }


def score(rows: Sequence[Question], probs: np.ndarray, c: float, weight: float) -> Setting:
    """What routing these (held-out) predictions at this cost weight achieves."""
    costs = route_costs(rows)
    cost = np.asarray([costs[r] for r in ROUTES])
    idx = decide(probs, weight * cost)
    got = _solved(rows)[np.arange(len(rows)), idx]
    return Setting(
        c=c,
        weight=weight,
        solved=float(got.mean()),
        cost=float(cost[idx].mean()),
        by_dataset={d: float(got[m].mean()) for d, m in _gold_masks(rows).items()},
    )


def choose_weight(
    rows: Sequence[Question],
    by_weight: dict[float, Setting],
    tolerance: float = RECALL_TOLERANCE,
) -> float:
    """The largest cost weight (the cheapest routing) whose held-out share solved stays, in every dataset,
    within `tolerance` of that dataset's best forced route; the smallest weight when none does."""
    floor = {d: max(v.values()) - tolerance for d, v in forced_recall(rows).items()}
    for w in sorted(by_weight, reverse=True):
        if all(by_weight[w].by_dataset.get(d, 1.0) >= f - 1e-9 for d, f in floor.items()):
            return w
    return min(by_weight)


def _folds(rows: Sequence[Question], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds grouped by question text, stratified by dataset and label."""
    from sklearn.model_selection import StratifiedGroupKFold

    strata = [f"{r.dataset}:{r.label}" for r in rows]
    groups = [r.text.strip().lower() for r in rows]
    n_groups = len(set(groups))
    k = max(2, min(k, n_groups))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(rows)), strata, groups))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def _oof_probs(rows: Sequence[Question], x: np.ndarray, c: float, k: int, seed: int) -> np.ndarray:
    solved, gold = _solved(rows), _has_gold(rows)
    probs = np.zeros((len(rows), len(ROUTES)))
    for train, test in _folds(rows, k, seed):
        train = train[gold[train]]
        mean, scale, coef, intercept = _fit_solvers(x[train], solved[train], c)
        probs[test] = _sigmoid(((x[test] - mean) / scale) @ coef.T + intercept)
    return probs


def fit_routers(
    rows: Sequence[Question],
    *,
    embedding_model: str | None,
    weights: Sequence[float] = WEIGHT_GRID,
    use_embedding: bool = True,
    structural: Sequence[str] = STRUCTURAL,
    seed: int = 0,
    tolerance: float = RECALL_TOLERANCE,
    about: dict[str, Any] | None = None,
) -> tuple[dict[float, RouterModel], float]:
    """One model per cost weight (its C chosen by inner cross-validation on these rows at that weight),
    and the weight `choose_weight` picks from the same inner predictions."""
    x = design(rows, use_embedding, structural)
    solved, gold = _solved(rows), _has_gold(rows)
    weights = tuple(dict.fromkeys(float(w) for w in weights))
    by_weight = {w: Setting(C_GRID[0], w, 0.0, 0.0, {}) for w in weights}
    if gold.sum() >= 2 * INNER_FOLDS:
        probs = {c: _oof_probs(rows, x, c, INNER_FOLDS, seed) for c in C_GRID}
        for w in weights:  # ties: the smaller C (the simpler model)
            by_weight[w] = max(
                (score(rows, probs[c], c, w) for c in C_GRID),
                key=lambda s: (round(s.solved - s.weight * s.cost, 9), -s.c),
            )
    chosen = choose_weight(rows, by_weight, tolerance) if len(weights) > 1 else weights[0]
    inner = {
        str(w): {"C": s.c, "solved": round(s.solved, 4), "cost": round(s.cost, 4)}
        | {f"solved_{d}": round(v, 4) for d, v in s.by_dataset.items()}
        for w, s in by_weight.items()
    }
    costs = route_costs(rows)
    fitted = {c: _fit_solvers(x[gold], solved[gold], c) for c in {s.c for s in by_weight.values()}}
    models = {}
    for w, s in by_weight.items():
        mean, scale, coef, intercept = fitted[s.c]
        models[w] = RouterModel(
            classes=ROUTES,
            structural=tuple(structural),
            embedding_model=embedding_model if use_embedding else None,
            embedding_dim=len(rows[0].vector) if use_embedding else 0,
            mean=mean,
            scale=scale,
            coef=coef,
            intercept=intercept,
            decision="expected",
            penalty={r: round(w * costs[r], 6) for r in ROUTES},
            about={
                "C": s.c,
                "cost_weight": w,
                "cost_weight_chosen_by": (
                    f"inner {INNER_FOLDS}-fold CV: the largest of {list(weights)} whose share solved stays "
                    f"within {tolerance:.3f} of the best forced route in every dataset"
                    if len(weights) > 1
                    else "fixed"
                ),
                "inner_cv_by_weight": inner,
                "route_costs": costs,
                **(about or {}),
            },
        )
    return models, chosen


def fit_router(
    rows: Sequence[Question],
    *,
    embedding_model: str | None,
    use_embedding: bool = True,
    structural: Sequence[str] = STRUCTURAL,
    weight: float | None = None,
    seed: int = 0,
    tolerance: float = RECALL_TOLERANCE,
    about: dict[str, Any] | None = None,
) -> RouterModel:
    """Fit on `rows`: C and (unless `weight` is given) the cost weight chosen by inner CV."""
    models, chosen = fit_routers(
        rows,
        embedding_model=embedding_model,
        weights=WEIGHT_GRID if weight is None else (weight,),
        use_embedding=use_embedding,
        structural=structural,
        seed=seed,
        tolerance=tolerance,
        about=about,
    )
    return models[chosen]


def cross_validate(
    rows: Sequence[Question],
    *,
    folds: int = 5,
    seed: int = 0,
    use_embedding: bool = True,
    structural: Sequence[str] = STRUCTURAL,
    weight: float | None = None,
    tolerance: float = RECALL_TOLERANCE,
) -> list[dict[str, Any]]:
    """Out-of-fold route and probabilities per question (each fold's model never saw its questions);
    `by_weight` holds the route each fixed cost weight would have taken, `weight` the one chosen."""
    weights = WEIGHT_GRID if weight is None else (weight,)
    out: list[dict[str, Any]] = [{} for _ in rows]
    for i, (train, test) in enumerate(_folds(rows, folds, seed)):
        part = [rows[j] for j in train]
        models, chosen = fit_routers(
            part,
            embedding_model="cv",
            weights=weights,
            use_embedding=use_embedding,
            structural=structural,
            seed=seed,
            tolerance=tolerance,
        )
        x = design([rows[j] for j in test], use_embedding, structural)
        probs = {w: m.probabilities(x) for w, m in models.items()}
        for n, j in enumerate(test):
            p = probs[chosen][n]
            out[j] = {
                "fold": i,
                "weight": chosen,
                "route": models[chosen].decide(p),
                "probs": [round(float(v), 4) for v in p],
                "by_weight": {w: models[w].decide(probs[w][n]) for w in models},
            }
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
