"""The learned router: question features and a multinomial logistic regression applied with numpy.

Features are the question's embedding (the index's own query vector, already computed for classify's
probe search) plus general structural cues: length, named-entity spans, comparison and bridge shapes,
the question word, and the shape of the probe retrieval (score spread, dense/BM25 agreement, whether a
retrieved title is named). The model is fitted offline by ragroute.evals.router_training (scikit-learn)
and shipped as JSON (tools/models/router.json); reading and applying it needs only numpy.

The decision is cost-aware. A model trained by this version ("expected" decision) holds one logistic
regression per route, P(that route's final context holds the gold evidence), and takes the route with
the highest P(route) - penalty(route), the penalty being a cost weight times the route's relative latency
(chosen at training time; ties go to the cheaper route). Older files ("thresholds" decision) hold a
multinomial model over the cheapest solving route: multihop when P(multihop) reaches its threshold, else
expand when P(expand) + P(multihop) reaches its threshold, else simple.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ragroute.tools.entities import (
    COMMON_CUE,
    COMPARISON_CUE,
    QUESTION_WORDS,
    comparison_entities,
    entity_spans,
)
from ragroute.tools.errors import ConfigError
from ragroute.tools.extractive import content_terms
from ragroute.tools.titles import hit_title, names_title

ROUTES = ("simple", "expand", "multihop")  # cheapest first
MODEL_PATH = Path(__file__).resolve().parent / "models" / "router.json"
MODEL_ENV = "RAGROUTE_ROUTER_MODEL"
FORMAT = "ragroute-router/1"
DECISIONS = ("expected", "thresholds")
PROBE_K = 10  # classify's probe search depth, whose hits the probe features describe

# general shapes of a question that names what it asks for through something else (a bridge)
_CUES: dict[str, re.Pattern[str]] = {
    # "the X that/who/which ...", "in which", "of whom"
    "relative_clause": re.compile(
        r"\b(?:the|an?|this|that|which|what)\s+(?:[\w\-]+\s+){0,3}?(?:that|who|which|whose|where|whom)\b"
        r"|\b(?:in|of|by|for|from|at|with)\s+(?:which|whom)\b",
        re.I,
    ),
    # "the N of (the) <Name>"
    "of_name": re.compile(
        r"\b(?:[Tt]he|[Tt]his|[Tt]hat|[Aa]n?)\s+(?:[\w\-]+\s+){1,3}?(?:of|for|by|in)\s+(?:the\s+)?[A-Z]"
    ),
    # reduced relative: "the N written by", "a group formed in"
    "reduced_relative": re.compile(
        r"\b(?:the|this|that|an?)\s+(?:[\w\-]+\s+){0,3}?[a-z]{2,}(?:ed|en)\s+(?:by|in|at|for|from|with|on|as)\s",
        re.I,
    ),
    # "a film featuring <Name>"
    "participle_name": re.compile(
        r"\b(?:[Tt]he|[Aa]n?|[Tt]his|[Tt]hat)\s+(?:[\w\-]+\s+){0,2}?[a-z]{3,}ing\s+[A-Z]"
    ),
    # "<Name>'s N"
    "possessive": re.compile(r"\b[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)*'s\s+(?:\d+\s+)?[a-z]"),
}
_EMBEDDED_WH = re.compile(
    r"(?<!^)(?<=\s)(what|which|who|whom|whose|when|where|how many|how much)\b(?!.*\bwhat\b)", re.I
)
_VAGUE = re.compile(r"\b(it|this|that thing|stuff|something|things|issue|problem|help|info)\b", re.I)
_WH = ("what", "which", "who", "when", "where", "how")
_YES_NO = ("is", "are", "was", "were", "does", "do", "did", "can", "has", "have")

STRUCTURAL = (
    "log_words",
    "n_terms",
    "n_entities",
    "compares",
    "comparison_cue",
    "common_cue",
    *_CUES,
    "embedded_wh",
    "vague_cue",
    *(f"wh_{w}" for w in _WH),
    "wh_yes_no",
    "wh_none",
    "is_question",
    "probe_hits",
    "probe_spread",
    "probe_agree",
    "probe_both_lists",
    "probe_docs",
    "top_dense",
    "dense_gap",
    "bm25_ratio",
    "titles_named",
)


def _probe_shape(probe: Sequence[Mapping[str, Any]], question: str) -> dict[str, float]:
    scores = [float(h.get("score", 0.0)) for h in probe]
    top_ranks = probe[0].get("ranks") or {} if probe else {}
    agree = bool(top_ranks) and all(r is not None and r <= 2 for r in top_ranks.values())
    spread = (scores[0] - scores[min(4, len(scores) - 1)]) / scores[0] if scores and scores[0] > 0 else 0.0
    both = [h for h in probe[:5] if all(r is not None for r in (h.get("ranks") or {"x": None}).values())]
    dense = sorted((float((h.get("source_scores") or {}).get("dense", 0.0)) for h in probe), reverse=True)
    bm25 = sorted((float((h.get("source_scores") or {}).get("bm25", 0.0)) for h in probe), reverse=True)
    titles = {hit_title(dict(h)) for h in probe} - {""}
    return {
        "probe_hits": float(len(probe)),
        "probe_spread": round(spread, 4),
        "probe_agree": float(agree),
        "probe_both_lists": len(both) / 5.0,
        "probe_docs": len({h.get("doc_id") for h in probe}) / max(1, len(probe)),
        "top_dense": dense[0] if dense else 0.0,
        "dense_gap": dense[0] - dense[1] if len(dense) > 1 else 0.0,
        "bm25_ratio": bm25[1] / bm25[0] if len(bm25) > 1 and bm25[0] > 0 else 0.0,
        "titles_named": float(sum(names_title(question, t) for t in titles)),
    }


def features(question: str, probe: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The structural features of a question and its probe retrieval (numbers, plus the entity lists)."""
    words = question.split()
    ents = entity_spans(question)
    compared = comparison_entities(question)
    first = words[0].lower() if words else ""
    out: dict[str, Any] = {
        "n_words": len(words),
        "log_words": round(math.log1p(len(words)), 4),
        "n_terms": len(content_terms(question)),
        "n_entities": len(ents),
        "entities": ents[:6],
        "comparison_entities": compared,
        "compares": float(bool(compared)),
        "comparison_cue": float(bool(COMPARISON_CUE.search(question))),
        "common_cue": float(bool(COMMON_CUE.search(question))),
        **{name: float(bool(rx.search(question))) for name, rx in _CUES.items()},
        "embedded_wh": float(bool(_EMBEDDED_WH.search(question))),
        "vague_cue": float(bool(_VAGUE.search(question))),
        **{f"wh_{w}": float(first == w) for w in _WH},
        "wh_yes_no": float(first in _YES_NO),
        "wh_none": float(first not in _WH and first not in _YES_NO),
        "question_word": first if first in QUESTION_WORDS else "",
        "is_question": float(question.rstrip().endswith("?") or first in QUESTION_WORDS),
    }
    out.update(_probe_shape(probe, question))
    return out


@dataclass(frozen=True)
class RouterModel:
    """z = ((x - mean) / scale) @ coef.T + intercept over [structural..., embedding...]; P(route) is
    sigmoid(z) per route ("expected": does this route find the evidence) or softmax(z) ("thresholds")."""

    classes: tuple[str, ...]
    structural: tuple[str, ...]
    embedding_model: str | None  # None: the model uses no embedding
    embedding_dim: int
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (classes, features)
    intercept: np.ndarray  # (classes,)
    # "thresholds" only: {"multihop": P(multihop) cut, "expand": P(expand or multihop) cut}
    thresholds: dict[str, float] = field(default_factory=dict)
    about: dict[str, Any] = field(default_factory=dict)
    decision: str = "thresholds"  # or "expected"
    penalty: dict[str, float] = field(default_factory=dict)  # "expected" only: subtracted from P(route)

    def __post_init__(self) -> None:
        n = len(self.structural) + self.embedding_dim
        if tuple(self.classes) != ROUTES:
            raise ValueError(f"classes {list(self.classes)} must be {list(ROUTES)}")
        if self.mean.shape != (n,) or self.scale.shape != (n,) or self.coef.shape != (len(ROUTES), n):
            raise ValueError(
                f"{n} features but mean/scale/coef have shapes {self.mean.shape}/{self.coef.shape}"
            )
        if self.intercept.shape != (len(ROUTES),) or not np.all(self.scale > 0):
            raise ValueError("intercept must have one value per route and every scale must be > 0")
        unknown = set(self.structural) - set(STRUCTURAL)
        if unknown:
            raise ValueError(f"unknown structural features {sorted(unknown)}; options: {list(STRUCTURAL)}")
        if self.decision not in DECISIONS:
            raise ValueError(f"decision {self.decision!r} is not one of {list(DECISIONS)}")
        if self.decision == "expected":
            for name in ROUTES:
                if not 0.0 <= float(self.penalty.get(name, -1)) <= 1.0:
                    raise ValueError(f"penalty {name!r} must be in [0, 1], got {self.penalty.get(name)!r}")
            return
        for name in ("multihop", "expand"):
            if not 0.0 <= float(self.thresholds.get(name, -1)) <= 1.0:
                raise ValueError(f"threshold {name!r} must be in [0, 1], got {self.thresholds.get(name)!r}")

    def row(self, feats: Mapping[str, Any], vector: Sequence[float] | None) -> np.ndarray:
        """One feature row. A missing or mismatched embedding sits at the training mean (no evidence)."""
        x = np.asarray([float(feats.get(name, 0.0)) for name in self.structural], dtype=float)
        if not self.embedding_dim:
            return x
        if vector is None or len(vector) != self.embedding_dim:
            emb = self.mean[len(self.structural) :]
        else:
            emb = np.asarray(vector, dtype=float)
        return np.concatenate([x, emb])

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """P(route) for rows of features in the model's order, one column per route."""
        z = ((np.atleast_2d(matrix) - self.mean) / self.scale) @ self.coef.T + self.intercept
        if self.decision == "expected":
            return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def decide(self, probs: Sequence[float]) -> str:
        """The route with the best P(route) - penalty ("expected"; ties: the cheaper), or the cheapest route
        unless the probability that a costlier one is needed reaches its threshold ("thresholds")."""
        p = dict(zip(self.classes, (float(v) for v in probs), strict=True))
        if self.decision == "expected":
            gain = [round(p[r] - self.penalty[r], 9) for r in ROUTES]
            return ROUTES[gain.index(max(gain))]
        if p["multihop"] >= self.thresholds["multihop"]:
            return "multihop"
        if p["expand"] + p["multihop"] >= self.thresholds["expand"]:
            return "expand"
        return "simple"

    def route(self, feats: Mapping[str, Any], vector: Sequence[float] | None) -> tuple[str, dict[str, float]]:
        """(route, {route: probability}) for one question."""
        probs = self.probabilities(self.row(feats, vector)[None, :])[0]
        return self.decide(probs), {c: round(float(v), 4) for c, v in zip(self.classes, probs, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "format": FORMAT,
            "kind": "standardised logistic regression per route"
            if self.decision == "expected"
            else "standardised multinomial logistic regression",
            "decision": self.decision,
            "penalty": dict(self.penalty),
            "classes": list(self.classes),
            "structural_features": list(self.structural),
            "embedding": {"model": self.embedding_model, "dim": self.embedding_dim},
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "thresholds": dict(self.thresholds),
            "about": self.about,
        }

    def save(self, path: str | Path) -> None:
        """Write the JSON form (compact floats) and check it reads back."""
        data = self.to_dict()
        for key in ("mean", "scale", "intercept"):
            data[key] = [float(f"{v:.6g}") for v in data[key]]
        data["coef"] = [[float(f"{v:.6g}") for v in row] for row in data["coef"]]
        Path(path).write_text(json.dumps(data) + "\n")
        load_router(path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouterModel:
        """Read the JSON form (ValueError/KeyError/TypeError when it is not one)."""
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {FORMAT!r}")
        emb = data.get("embedding") or {}
        return cls(
            classes=tuple(data["classes"]),
            structural=tuple(data["structural_features"]),
            embedding_model=emb.get("model"),
            embedding_dim=int(emb.get("dim") or 0),
            mean=np.asarray(data["mean"], dtype=float),
            scale=np.asarray(data["scale"], dtype=float),
            coef=np.asarray(data["coef"], dtype=float),
            intercept=np.asarray(data["intercept"], dtype=float),
            thresholds={k: float(v) for k, v in dict(data.get("thresholds") or {}).items()},
            about=dict(data.get("about") or {}),
            decision=str(data.get("decision") or "thresholds"),
            penalty={k: float(v) for k, v in dict(data.get("penalty") or {}).items()},
        )


_loaded: dict[tuple[str, float, int], RouterModel] = {}
_lock = threading.Lock()


def model_path(configured: str | None = None) -> Path:
    """The router file in use: the configured path, else $RAGROUTE_ROUTER_MODEL, else the shipped model."""
    chosen = configured or os.environ.get(MODEL_ENV) or None
    return Path(chosen).expanduser() if chosen else MODEL_PATH


def load_router(path: str | Path | None = None) -> RouterModel:
    """The router model at `path` (see model_path), read once per file version; ConfigError when unusable."""
    file = model_path(str(path) if path else None)
    try:
        stat = file.stat()
    except OSError as exc:
        raise ConfigError(f"router_model={str(file)!r} cannot be read: {exc.strerror}") from None
    key = (str(file), stat.st_mtime, stat.st_size)
    with _lock:
        found = _loaded.get(key)
    if found is not None:
        return found
    try:
        model = RouterModel.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"router_model={str(file)!r} is not a ragroute router model: {problem}") from None
    with _lock:
        _loaded[key] = model
    return model
