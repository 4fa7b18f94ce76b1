"""Evaluation metrics: ranking quality, answer quality, citations, abstention, latency and cost.

Every function here is pure (lists and dicts in, floats out) so it can be checked by hand. Ranking
metrics follow trec_eval / pytrec_eval conventions (what BEIR reports): graded relevance with linear
gain, a log2(rank + 1) discount, the ideal ranking built from all judged documents of the query, and
documents with grade <= 0 counted as not relevant.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ragroute.tools.errors import ConfigError, InputError
from ragroute.tools.sentences import split_sentences

Qrels = Mapping[str, int | float]  # doc id -> relevance grade of one query

# ---------------------------------------------------------------------------------------------------
# Ranking metrics


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")


def dedupe_ranking(ranked: Iterable[str]) -> list[str]:
    """Keep the first occurrence of each id: several chunks of one document count once, at its best rank."""
    seen: set[str] = set()
    out: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            out.append(doc_id)
    return out


def _relevant(qrels: Qrels) -> set[str]:
    return {doc for doc, grade in qrels.items() if grade > 0}


def hit_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """1.0 when at least one relevant document is in the top k, else 0.0."""
    _check_k(k)
    relevant = _relevant(qrels)
    return 1.0 if any(doc in relevant for doc in ranked[:k]) else 0.0


def recall_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """Share of the query's relevant documents found in the top k (0.0 when nothing is relevant)."""
    _check_k(k)
    relevant = _relevant(qrels)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def precision_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """Relevant documents in the top k divided by k (trec_eval's P_k: a short list is not rewarded)."""
    _check_k(k)
    relevant = _relevant(qrels)
    return sum(1 for doc in ranked[:k] if doc in relevant) / k


def mrr_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k, 0.0 when there is none."""
    _check_k(k)
    relevant = _relevant(qrels)
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of gains listed by rank: sum of gain_i / log2(i + 1), ranks from 1."""
    return sum(g / math.log2(i + 1) for i, g in enumerate(gains, start=1) if g > 0)


def ndcg_at_k(ranked: Sequence[str], qrels: Qrels, k: int) -> float:
    """nDCG@k with graded relevance; the ideal ordering is the query's judged grades sorted descending."""
    _check_k(k)
    ideal = dcg(sorted((float(g) for g in qrels.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    gains = [float(qrels.get(doc, 0)) for doc in ranked[:k]]
    return dcg(gains) / ideal


RANKING_METRICS = {
    "hit": hit_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
}


def ranking_metrics(ranked: Sequence[str], qrels: Qrels, ks: Iterable[int]) -> dict[str, float]:
    """All ranking metrics for one query at each k, keyed like "ndcg@10"."""
    ranked = dedupe_ranking(ranked)
    out: dict[str, float] = {}
    for k in ks:
        for name, fn in RANKING_METRICS.items():
            out[f"{name}@{k}"] = fn(ranked, qrels, k)
    return out


def all_found(ranked: Iterable[str], gold: Iterable[str]) -> float:
    """1.0 when every gold id is among `ranked` (e.g. both HotpotQA supporting paragraphs), else 0.0."""
    gold_set = set(gold)
    if not gold_set:
        return 0.0
    return 1.0 if gold_set.issubset(set(ranked)) else 0.0


# ---------------------------------------------------------------------------------------------------
# Answer text metrics (SQuAD-style)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and the articles a/an/the, squeeze whitespace."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    """Normalised answer tokens."""
    return normalize_answer(text).split()


def _f1_recall(prediction: str, gold: str) -> tuple[float, float]:
    pred, ref = answer_tokens(prediction), answer_tokens(gold)
    if not pred or not ref:
        same = float(pred == ref)
        return same, same
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0, 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall), recall


def token_f1(prediction: str, golds: Sequence[str] | str) -> float:
    """Best token F1 of `prediction` against any gold answer (SQuAD's max over references)."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    if not golds:
        raise InputError("token_f1 needs at least one gold answer")
    return max(_f1_recall(prediction, g)[0] for g in golds)


def token_recall(prediction: str, golds: Sequence[str] | str) -> float:
    """Best share of a gold answer's tokens that the prediction contains (lenient for long answers)."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    if not golds:
        raise InputError("token_recall needs at least one gold answer")
    return max(_f1_recall(prediction, g)[1] for g in golds)


def exact_match(prediction: str, golds: Sequence[str] | str) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    norm = normalize_answer(prediction)
    return 1.0 if any(norm == normalize_answer(g) for g in golds) else 0.0


# ---------------------------------------------------------------------------------------------------
# Citations and faithfulness

_IDK = re.compile(
    r"\b(i don'?t know|i do not know|cannot (?:be )?(?:answer|determine)|can'?t answer|"
    r"not enough information|no (?:relevant )?information|unable to answer|"
    r"(?:the )?(?:provided )?(?:context|sources?|documents?) "
    r"(?:do(?:es)? not|don'?t) (?:contain|say|mention))",
    re.IGNORECASE,
)


def is_idk(answer: str, abstained: bool | None = None) -> bool:
    """True when the system declined: the graph's `abstained` flag or an "I don't know"-style answer."""
    if abstained:
        return True
    return not answer.strip() or bool(_IDK.search(answer))


def citation_precision_recall(cited: Iterable[str], gold: Iterable[str]) -> tuple[float | None, float | None]:
    """(precision, recall) of the set of cited passage/document ids against the gold supporting ids.

    precision is None when nothing was cited, recall is None when there is no gold: an undefined value
    is left out of averages instead of being counted as 0 or 1.
    """
    cited_set, gold_set = set(cited), set(gold)
    hits = len(cited_set & gold_set)
    precision = hits / len(cited_set) if cited_set else None
    recall = hits / len(gold_set) if gold_set else None
    return precision, recall


_STOP = frozenset(
    "a an the of in on at to for from by with and or but is are was were be been being it its this that "
    "these those as into than then there their they he she his her we you i not no do does did has have "
    "had which who what when where why how can could would should may might will shall also such".split()
)
_WORD = re.compile(r"[a-z0-9]+")
_CITE = re.compile(r"\[(\d+)\]")


def strip_citations(text: str) -> str:
    """The text without its [n] citation markers (they are not part of the answer's words)."""
    return " ".join(_CITE.sub(" ", text).split())


def content_tokens(text: str) -> set[str]:
    """Lower-case word tokens without stop words: what must be backed by a source."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def overlap_support(sentence: str, passage: str) -> float:
    """Share of the sentence's content tokens that occur in the passage (0..1; 1.0 for an empty sentence)."""
    words = content_tokens(_CITE.sub(" ", sentence))
    if not words:
        return 1.0
    return len(words & content_tokens(passage)) / len(words)


def cited_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence, citation numbers) for every sentence of the answer."""
    return [(s, [int(n) for n in _CITE.findall(s)]) for s in split_sentences(answer, "cited")]


def support_scorer() -> Any:
    """The project's sentence-support score (ragroute.tools.faithfulness, MiniLM + word coverage) as
    `fn(sentence, passage) -> float`; the token-overlap `overlap_support` when that is unavailable."""
    try:
        from ragroute.runtime import providers
        from ragroute.tools.faithfulness import score_answer
    except ImportError:
        return overlap_support
    embed = providers.embedder()

    def support(sentence: str, passage: str) -> float:
        parts = score_answer(f"{sentence.strip()} [1]", [{"n": 1, "text": passage}], embed)
        return min((p.support for p in parts), default=0.0)

    return support


def citation_accuracy(
    answer: str,
    passages: Mapping[int, str],
    *,
    threshold: float = 0.5,
    support: Any = None,
) -> float | None:
    """Share of (sentence, citation) pairs whose cited passage supports the sentence.

    `passages` maps citation number -> passage text; a citation to a number with no passage counts as
    wrong. `support(sentence, passage) -> float` defaults to `overlap_support`; evaluation runs pass
    `support_scorer()` (the graph's own faithfulness score). None when the answer cites nothing.
    """
    scorer = support or overlap_support
    pairs = [(s, n) for s, nums in cited_sentences(answer) for n in nums]
    if not pairs:
        return None
    good = 0
    for sentence, n in pairs:
        passage = passages.get(n)
        if passage is not None and float(scorer(_CITE.sub(" ", sentence), passage)) >= threshold:
            good += 1
    return good / len(pairs)


# ---------------------------------------------------------------------------------------------------
# Abstention


def abstention_metrics(records: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    """Abstention quality over records with `answerable` (bool or None) and `abstained` (bool).

    abstain_accuracy: share of unanswerable questions the system declined; answer_rate: share of
    answerable ones it did answer; decision_accuracy: both together over all labelled questions;
    idk_rate: share of all questions declined.
    """
    rows = list(records)
    unans = [r for r in rows if r.get("answerable") is False]
    ans = [r for r in rows if r.get("answerable") is True]
    declined = [bool(r.get("abstained")) for r in rows]
    correct = sum(bool(r.get("abstained")) for r in unans) + sum(not r.get("abstained") for r in ans)
    return {
        "abstain_accuracy": mean(bool(r.get("abstained")) for r in unans),
        "answer_rate": mean(not r.get("abstained") for r in ans),
        "decision_accuracy": correct / (len(unans) + len(ans)) if (unans or ans) else None,
        "idk_rate": mean(declined),
    }


# ---------------------------------------------------------------------------------------------------
# Aggregation, latency, cost


def mean(values: Iterable[float | bool | None]) -> float | None:
    """Arithmetic mean ignoring None; None for no values."""
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not 0 <= q <= 100:
        raise ConfigError(f"percentile q must be within 0..100, got {q!r}")
    data = sorted(float(v) for v in values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_summary(values_ms: Iterable[float], prefix: str = "latency") -> dict[str, float | None]:
    """p50/p95/p99/mean of a list of latencies in milliseconds, keyed like "latency_p95_ms"."""
    data = [float(v) for v in values_ms]
    out: dict[str, float | None] = {f"{prefix}_p{q}_ms": percentile(data, q) for q in (50, 95, 99)}
    out[f"{prefix}_mean_ms"] = mean(data)
    return out


# $ per 1K tokens. Offline generators cost nothing; hosted models start from the graph's own price table
# (ragroute.runtime.providers.PRICES_PER_MTOK) and are overridden by evals/prices.json or --prices.
OFFLINE_PRICES: dict[str, dict[str, float]] = {
    "extractive-offline": {"prompt": 0.0, "completion": 0.0},
    "offline": {"prompt": 0.0, "completion": 0.0},
}


def default_prices() -> dict[str, dict[str, float]]:
    """Offline entries plus the graph's list prices converted from $/1M to $/1K tokens."""
    prices = {k: dict(v) for k, v in OFFLINE_PRICES.items()}
    try:
        from ragroute.runtime.providers import PRICES_PER_MTOK
    except ImportError:
        return prices
    for model, (prompt, completion) in PRICES_PER_MTOK.items():
        prices[model] = {"prompt": prompt / 1000, "completion": completion / 1000}
    return prices


PRICES_FILE = Path(__file__).with_name("prices.json")


def load_prices(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Price table: default_prices() updated with evals/prices.json (or `path`)."""
    prices = default_prices()
    file = Path(path) if path else PRICES_FILE
    if path and not file.exists():
        raise InputError(f"price table {file} does not exist")
    if file.exists():
        try:
            data = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"price table {file} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise InputError(f"price table {file} must be an object of model -> {{prompt, completion}}")
        for model, entry in data.items():
            if model.startswith("_"):
                continue  # comments
            if not isinstance(entry, dict) or not {"prompt", "completion"} <= set(entry):
                raise InputError(f"price table {file}: {model!r} needs 'prompt' and 'completion' $/1K tokens")
            prices[model] = {"prompt": float(entry["prompt"]), "completion": float(entry["completion"])}
    return prices


def query_cost(
    model: str | None, usage: Mapping[str, Any] | None, prices: Mapping[str, Mapping[str, float]]
) -> float | None:
    """Dollar cost of one query from its token usage and the model's price; None when the price is unknown.

    `model` is looked up as given ("openai:gpt-4o-mini"), then without its provider prefix. A model
    missing from the table falls back to the `cost_usd` the provider reported, if any. Models whose name
    starts with "extractive" or "offline" are free.
    """
    usage = usage or {}
    name = model or ""
    entry = prices.get(name) or prices.get(name.partition(":")[2])
    if entry is None and (name.startswith("extractive") or name.startswith("offline")):
        entry = {"prompt": 0.0, "completion": 0.0}
    if entry is None:
        reported = usage.get("cost_usd")
        return float(reported) if reported is not None else None
    prompt = float(usage.get("prompt_tokens") or 0)
    completion = float(usage.get("completion_tokens") or 0)
    return prompt / 1000 * entry["prompt"] + completion / 1000 * entry["completion"]
