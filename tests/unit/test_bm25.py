"""BM25Index: parity with a hand-written BM25 (Okapi, rank-bm25's idf floor) and with rank-bm25 itself."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from ragroute.tools.analyzer import tokenize
from ragroute.tools.bm25 import BM25Index
from rank_bm25 import BM25Okapi

DOCS = {
    "a": "the quick brown fox jumps over the lazy dog",
    "b": "a quick brown dog outpaces a quick red fox",
    "c": "lorem ipsum dolor sit amet consectetur",
    "d": "foxes and dogs are mammals; a fox is quick",
    "e": "vector databases store embeddings for semantic search",
    "f": "bm25 is a keyword ranking function used by search engines",
}


def reference_bm25(
    corpus: dict[str, list[str]], query: list[str], k1=1.5, b=0.75, eps=0.25
) -> dict[str, float]:
    """Straight from the formula: idf = ln((N - n + 0.5) / (n + 0.5)), negatives floored at eps * mean idf."""
    n_docs = len(corpus)
    avgdl = sum(len(t) for t in corpus.values()) / n_docs
    df: dict[str, int] = {}
    for toks in corpus.values():
        for term in set(toks):
            df[term] = df.get(term, 0) + 1
    idf = {t: math.log(n_docs - n + 0.5) - math.log(n + 0.5) for t, n in df.items()}
    floor = eps * sum(idf.values()) / len(idf)
    idf = {t: (v if v >= 0 else floor) for t, v in idf.items()}
    out = {}
    for cid, toks in corpus.items():
        s = 0.0
        for q in query:
            tf = toks.count(q)
            if tf:
                s += idf[q] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(toks) / avgdl))
        out[cid] = s
    return out


def build(docs=DOCS) -> tuple[BM25Index, dict[str, list[str]]]:
    index = BM25Index()
    toks = {cid: tokenize(t) for cid, t in docs.items()}
    index.add_many(toks.items())
    return index, toks


@pytest.mark.parametrize("query", ["quick fox", "fox fox dog", "semantic search engines", "mammals", "zzz"])
def test_scores_match_reference_formula_and_rank_bm25(query):
    index, toks = build()
    q = tokenize(query)
    ids, scores = index.scores(q)
    ref = reference_bm25(toks, q)
    assert scores == pytest.approx([ref[c] for c in ids])
    okapi = BM25Okapi([toks[c] for c in ids])
    assert scores == pytest.approx(okapi.get_scores(q))


def test_random_corpus_parity():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(40)]
    docs = {f"d{i}": [rng.choice(vocab) for _ in range(rng.randint(1, 30))] for i in range(80)}
    index = BM25Index(k1=1.2, b=0.6)
    index.add_many(docs.items())
    for _ in range(20):
        q = rng.sample(vocab, 3)
        ids, scores = index.scores(q)
        ref = reference_bm25(docs, q, k1=1.2, b=0.6)
        assert scores == pytest.approx([ref[c] for c in ids])


def test_search_orders_and_requires_a_matching_term():
    index, toks = build()
    hits = index.search(tokenize("quick fox"), 10)
    assert [c for c, _ in hits][:1] in (["b"], ["a"], ["d"])
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert {c for c, _ in hits} == {c for c, t in toks.items() if {"quick", "fox"} & set(t)}
    assert index.search(tokenize("unrelated words"), 10) == []


def test_allowed_mask_applies_before_the_cut():
    index, _ = build()
    q = tokenize("quick fox")
    full = index.search(q, 10)
    worst = full[-1][0]
    # with k=1 and only the worst match allowed, we still get it (filtering happens before top-k)
    assert index.search(q, 1, allowed={worst}) == [full[-1]]
    assert index.search(q, 1, allowed=index.mask_for({worst})) == [full[-1]]
    assert index.search(q, 5, allowed=set()) == []


def test_add_remove_rebuilds_lazily():
    index, _ = build()
    q = tokenize("embeddings")
    assert [c for c, _ in index.search(q, 5)] == ["e"]
    index.add("g", tokenize("embeddings everywhere"))
    assert {c for c, _ in index.search(q, 5)} == {"e", "g"}
    assert index.remove("e") and not index.remove("e")
    assert [c for c, _ in index.search(q, 5)] == ["g"]
    index.add("g", tokenize("replaced text"))
    assert index.search(q, 5) == []
    assert len(index) == 6 and "g" in index


def test_empty_and_degenerate():
    index = BM25Index()
    assert index.search(["x"], 5) == []
    index.add("only-stopwords", [])
    assert index.search(["x"], 5) == []
    assert index.scores(["x"])[1].tolist() == [0.0]


def test_snapshot_round_trip_checks_version(tmp_path):
    index, _ = build()
    path = tmp_path / "bm25.json"
    index.save(path, version=4, signature="sig")
    other = BM25Index()
    assert not other.load(path, version=5, signature="sig")
    assert not other.load(path, version=4, signature="other")
    assert not BM25Index(k1=1.0).load(path, version=4, signature="sig")
    assert other.load(path, version=4, signature="sig")
    q = tokenize("quick fox")
    assert other.search(q, 10) == index.search(q, 10)
    assert not other.load(tmp_path / "missing.json", version=4, signature="sig")


def test_mask_shape_is_checked():
    index, _ = build()
    with pytest.raises(ValueError, match="mask"):
        index.search(["fox"], 3, allowed=np.ones(2, dtype=bool))
