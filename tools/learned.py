"""Small learned models shipped as JSON: a standardised logistic regression applied with numpy.

Fitted offline with scikit-learn (`fit`, imported only there) by the benchmarks that own each model
(evals/benchmarks/answerability_cv.py, rerank_ltr.py); read at query time by `LogisticModel.load`,
so the query path never imports scikit-learn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LogisticModel:
    """P(positive) = sigmoid(((x - mean) / scale) . coef + intercept); `threshold`: the default cut."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise ValueError(f"logistic model: {n} features but mean/scale/coef of other lengths")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"logistic model threshold={self.threshold!r} must be in [0, 1]")

    def vector(self, features: Mapping[str, float]) -> np.ndarray:
        """The named features in the model's order (a missing one is 0)."""
        return np.asarray([float(features.get(name, 0.0)) for name in self.features])

    def probability(self, features: Mapping[str, float]) -> float:
        """P(positive) for one row given by name."""
        return float(self.probabilities(self.vector(features)[None, :])[0])

    def decision(self, matrix: np.ndarray) -> np.ndarray:
        """The linear score (log-odds) of rows in the model's feature order: enough to rank by."""
        return ((np.asarray(matrix, dtype=float) - self.mean) / self.scale) @ self.coef + self.intercept

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """P(positive) for rows in the model's feature order."""
        return 1.0 / (1.0 + np.exp(-self.decision(matrix)))

    def to_dict(self, **about: Any) -> dict[str, Any]:
        """JSON form; `about` adds provenance (data, cross-validated numbers)."""
        return {
            "kind": "standardised logistic regression",
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "threshold": self.threshold,
            **about,
        }

    def save(self, path: Path, **about: Any) -> None:
        """Write the JSON form (and check it reads back)."""
        path.write_text(json.dumps(self.to_dict(**about), indent=1) + "\n")
        LogisticModel.load(path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogisticModel:
        """Read the JSON form."""
        return cls(
            features=tuple(data["features"]),
            mean=np.asarray(data["mean"], dtype=float),
            scale=np.asarray(data["scale"], dtype=float),
            coef=np.asarray(data["coef"], dtype=float),
            intercept=float(data["intercept"]),
            threshold=float(data.get("threshold", 0.5)),
        )

    @classmethod
    def load(cls, path: Path) -> LogisticModel:
        """Read a model file."""
        return cls.from_dict(json.loads(path.read_text()))


def fit(
    matrix: np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    names: Sequence[str],
    *,
    threshold: float = 0.5,
    c: float = 1.0,
    balanced: bool = False,
) -> LogisticModel:
    """Fit with scikit-learn (training only). `balanced`: weight classes by inverse frequency."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(matrix, dtype=float)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    scale = np.where(std > 1e-12, std, 1.0)  # a constant feature (no dates in a corpus) gets weight 0
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None)
    clf.fit((x - mean) / scale, np.asarray(labels, dtype=int))
    return LogisticModel(tuple(names), mean, scale, clf.coef_[0].copy(), float(clf.intercept_[0]), threshold)
