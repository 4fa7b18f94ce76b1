"""RRF fusion: parity with a plain reference, weights, doc-type leans, dedup and rank bookkeeping; hit lists;
the one weights validator."""

from __future__ import annotations

import random

import pytest
from ragroute.tools.errors import ConfigError
from ragroute.tools.hybrid import fuse_hits, rrf_fuse, validate_weights


def reference_rrf(lists, k=60, weights=None, lean=None):
    weights = weights or {}
    scores: dict[str, float] = {}
    for name, ranked in lists.items():
        seen = set()
        rank = 0
        for cid, _ in ranked:
            rank += 1
            if cid in seen:
                continue
            seen.add(cid)
            w = weights.get(name, 1.0) * ((lean or {}).get(cid, {}).get(name, 1.0))
            scores[cid] = scores.get(cid, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def test_parity_with_reference_on_random_lists():
    rng = random.Random(5)
    pool = [f"c{i}" for i in range(50)]
    types = {c: rng.choice(["technical", "conceptual", None]) for c in pool}
    dtw = {"technical": {"dense": 0.7, "bm25": 1.3}, "conceptual": {"dense": 1.2}}
    for _ in range(50):
        lists = {
            name: [(c, rng.random()) for c in rng.sample(pool, rng.randint(0, 30))]
            for name in ("dense", "bm25")
        }
        weights = {"dense": rng.uniform(0, 2), "bm25": rng.uniform(0, 2)}
        rrf_k = rng.choice([0, 1, 10, 60])
        got = rrf_fuse(lists, rrf_k=rrf_k, weights=weights, doc_type_weights=dtw, doc_type_of=types.get)
        lean = {c: dtw[t] for c, t in types.items() if t}
        ref = reference_rrf(lists, rrf_k, weights, lean)
        assert [f.chunk_id for f in got] == [c for c, _ in ref]
        assert [f.score for f in got] == pytest.approx([s for _, s in ref])


def test_ranks_and_source_scores_are_recorded():
    fused = rrf_fuse({"dense": [("a", 0.9), ("b", 0.8)], "bm25": [("b", 7.0), ("c", 3.0)]}, rrf_k=60)
    by_id = {f.chunk_id: f for f in fused}
    assert fused[0].chunk_id == "b"
    assert by_id["b"].ranks == {"dense": 2, "bm25": 1}
    assert by_id["a"].ranks == {"dense": 1, "bm25": None}
    assert by_id["c"].source_scores == {"bm25": 3.0}
    assert by_id["b"].score == pytest.approx(1 / 62 + 1 / 61)


def test_duplicates_keep_best_rank_and_limit():
    fused = rrf_fuse({"dense": [("a", 0.9), ("a", 0.5), ("b", 0.4)]}, rrf_k=0, limit=1)
    assert len(fused) == 1 and fused[0].chunk_id == "a" and fused[0].score == pytest.approx(1.0)


def test_zero_weight_silences_a_retriever():
    lists = {"dense": [("a", 1.0), ("b", 0.5)], "bm25": [("b", 9.0), ("a", 1.0)]}
    assert rrf_fuse(lists, weights={"dense": 0.0})[0].chunk_id == "b"
    assert rrf_fuse(lists, weights={"bm25": 0.0})[0].chunk_id == "a"


def test_doc_type_lean_changes_order():
    lists = {"dense": [("tech", 0.9), ("idea", 0.8)], "bm25": [("idea", 5.0), ("tech", 4.0)]}
    types = {"tech": "technical", "idea": "conceptual"}.get
    plain = rrf_fuse(lists)
    assert plain[0].score == pytest.approx(plain[1].score)
    leaned = rrf_fuse(lists, doc_type_weights={"technical": {"dense": 1.5}}, doc_type_of=types)
    assert leaned[0].chunk_id == "tech"


def test_bad_rrf_k():
    with pytest.raises(ConfigError, match="rrf_k"):
        rrf_fuse({}, rrf_k=-1)
    assert rrf_fuse({"dense": [], "bm25": []}) == []


def hit(cid: str, score: float = 1.0) -> dict:
    return {"chunk_id": cid, "text": f"text of {cid}", "score": score}


def test_fuse_hits_rewards_hits_found_by_several_queries():
    fused = fuse_hits([[hit("a"), hit("b"), hit("c")], [hit("c"), hit("d")]], rrf_k=60)
    assert [h["chunk_id"] for h in fused] == ["c", "a", "b", "d"]
    assert fused[0]["score"] == pytest.approx(1 / 63 + 1 / 61)


def test_fuse_hits_parity_with_reference_on_random_query_lists():
    rng = random.Random(11)
    pool = [f"c{i:02d}" for i in range(40)]
    for _ in range(50):
        lists = [
            [hit(c, rng.random()) for c in rng.sample(pool, rng.randint(0, 20))]
            for _ in range(rng.randint(1, 5))
        ]
        rrf_k = rng.choice([0, 1, 10, 60])
        got = fuse_hits(lists, rrf_k=rrf_k)
        ref = reference_rrf(
            {str(i): [(h["chunk_id"], h["score"]) for h in hits] for i, hits in enumerate(lists)}, rrf_k
        )
        assert [h["chunk_id"] for h in got] == [c for c, _ in ref]
        assert [h["score"] for h in got] == pytest.approx([s for _, s in ref])


def test_fuse_hits_keeps_the_first_occurrence_and_its_retrieval_score():
    first, later = {**hit("a", 0.9), "query": "q1"}, {**hit("a", 0.2), "query": "q2"}
    fused = fuse_hits([[hit("b", 0.5), first], [later]], rrf_k=0)
    by_id = {h["chunk_id"]: h for h in fused}
    assert by_id["a"]["query"] == "q1" and by_id["a"]["retrieval_score"] == 0.9
    assert by_id["a"]["score"] == pytest.approx(1 / 2 + 1 / 1)
    assert first["score"] == 0.9  # inputs are not modified


def test_fuse_hits_breaks_ties_by_chunk_id_and_counts_a_repeat_once():
    fused = fuse_hits([[hit("z"), hit("z"), hit("b")], [hit("b"), hit("x"), hit("z")]])
    assert [h["chunk_id"] for h in fused] == ["b", "z", "x"]  # equal scores: chunk id decides
    assert fused[0]["score"] == pytest.approx(fused[1]["score"])
    assert fuse_hits([]) == [] and fuse_hits([[], []]) == []


def test_validate_weights_checks_names_and_values():
    assert validate_weights({"dense": 1, "bm25": 0.5}) == {"dense": 1.0, "bm25": 0.5}
    assert validate_weights({"q0": 2}, known=None) == {"q0": 2.0}
    with pytest.raises(ConfigError, match=r"unknown retriever\(s\) \['sparse'\]; options: dense, bm25"):
        validate_weights({"sparse": 1.0})
    with pytest.raises(ConfigError, match="must be a dict"):
        validate_weights([1.0, 2.0])
    for bad in (-1, float("nan"), float("inf"), True, "0.5"):
        with pytest.raises(ConfigError, match=r"weights\['dense'\] must be a finite number >= 0"):
            validate_weights({"dense": bad})
