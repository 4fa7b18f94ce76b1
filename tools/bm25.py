"""Keyword index: rank-bm25's BM25Okapi over analyzed chunk tokens, with add/remove by chunk id, an allowed-id
mask applied before the top-k cut, and a JSON snapshot on disk.

Scores are exactly BM25Okapi's (idf with its epsilon floor, k1, b); we only replace its per-query Python loop
over every document with per-term posting arrays, so a query costs numpy work proportional to the postings.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ragroute.tools.errors import ConfigError
from rank_bm25 import BM25Okapi

SNAPSHOT_FORMAT = 1


class BM25Index:
    """Chunk-id keyed BM25 over pre-analyzed tokens; the BM25Okapi object is rebuilt lazily after changes."""

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self._tokens: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._dirty = True
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        self._okapi: BM25Okapi | None = None
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._norm: np.ndarray = np.zeros(0)

    # ------------------------------------------------------------------ mutation
    def add(self, chunk_id: str, tokens: list[str]) -> None:
        """Add or replace one chunk's tokens."""
        with self._lock:
            self._tokens[chunk_id] = list(tokens)
            self._dirty = True

    def add_many(self, items: Iterable[tuple[str, list[str]]]) -> None:
        """Add or replace several chunks."""
        with self._lock:
            for cid, toks in items:
                self._tokens[cid] = list(toks)
            self._dirty = True

    def remove(self, chunk_id: str) -> bool:
        """Remove one chunk; False if it was absent."""
        with self._lock:
            if self._tokens.pop(chunk_id, None) is None:
                return False
            self._dirty = True
            return True

    def remove_many(self, chunk_ids: Iterable[str]) -> int:
        """Remove several chunks; returns how many existed."""
        with self._lock:
            n = sum(self._tokens.pop(c, None) is not None for c in chunk_ids)
            if n:
                self._dirty = True
            return n

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._tokens.clear()
            self._dirty = True

    def ids(self) -> set[str]:
        """Chunk ids currently indexed."""
        with self._lock:
            return set(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._tokens

    # ------------------------------------------------------------------ build
    def _rebuild(self) -> None:
        ids = sorted(self._tokens)
        self._ids = ids
        self._pos = {cid: i for i, cid in enumerate(ids)}
        self._postings = {}
        if not ids:
            self._okapi = None
            self._norm = np.zeros(0)
            self._dirty = False
            return
        corpus = [self._tokens[c] for c in ids]
        if not any(corpus):  # BM25Okapi divides by the vocabulary size
            self._okapi = None
            self._norm = np.zeros(len(ids))
            self._dirty = False
            return
        okapi = BM25Okapi(corpus, k1=self.k1, b=self.b, epsilon=self.epsilon)
        doc_len = np.asarray(okapi.doc_len, dtype=np.float64)
        self._norm = self.k1 * (1.0 - self.b + self.b * doc_len / okapi.avgdl)
        rows: dict[str, list[int]] = {}
        tfs: dict[str, list[int]] = {}
        for i, freqs in enumerate(okapi.doc_freqs):
            for term, tf in freqs.items():
                rows.setdefault(term, []).append(i)
                tfs.setdefault(term, []).append(tf)
        self._postings = {
            t: (np.asarray(rows[t], dtype=np.int64), np.asarray(tfs[t], dtype=np.float64)) for t in rows
        }
        self._okapi = okapi
        self._dirty = False

    def _ensure(self) -> None:
        if self._dirty:
            self._rebuild()

    @property
    def okapi(self) -> BM25Okapi | None:
        """The underlying rank-bm25 object (rebuilt if stale); None when empty."""
        with self._lock:
            self._ensure()
            return self._okapi

    # ------------------------------------------------------------------ scoring
    def scores(self, query_tokens: list[str]) -> tuple[list[str], np.ndarray]:
        """BM25Okapi scores of every chunk (ids sorted) for the analyzed query."""
        with self._lock:
            self._ensure()
            return list(self._ids), self._scores(query_tokens)

    def _scores(self, query_tokens: list[str], hit: np.ndarray | None = None) -> np.ndarray:
        score = np.zeros(len(self._ids))
        if self._okapi is None:
            return score
        idf = self._okapi.idf
        k1p1 = self.k1 + 1.0
        for term in query_tokens:  # repeated query terms count again, as in BM25Okapi.get_scores
            post = self._postings.get(term)
            if post is None:
                continue
            rows, tf = post
            score[rows] += idf[term] * (tf * k1p1 / (tf + self._norm[rows]))
            if hit is not None:
                hit[rows] = True
        return score

    def mask_for(self, allowed: Iterable[str]) -> np.ndarray:
        """Boolean mask over the current id order admitting `allowed` chunk ids."""
        with self._lock:
            self._ensure()
            mask = np.zeros(len(self._ids), dtype=bool)
            idx = [self._pos[c] for c in allowed if c in self._pos]
            if idx:
                mask[np.asarray(idx, dtype=np.int64)] = True
            return mask

    def search(
        self, query_tokens: list[str], k: int, *, allowed: set[str] | np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (chunk_id, score) among `allowed` chunks containing a query term, best first.

        A chunk that contains a query term is a match even when its score is 0 (in tiny corpora BM25Okapi's
        idf is 0 for a term in half the documents).

        `allowed` (a set of ids or a mask from `mask_for`) is applied before the cut, so a filter never
        leaves fewer than k results while more matching chunks exist.
        """
        if k <= 0:
            return []
        with self._lock:
            self._ensure()
            if not self._ids:
                return []
            ok = np.zeros(len(self._ids), dtype=bool)
            score = self._scores(query_tokens, ok)
            if allowed is not None:
                mask = allowed if isinstance(allowed, np.ndarray) else self.mask_for(allowed)
                if mask.shape != ok.shape:
                    raise ValueError("allowed mask does not match the index size; build it with mask_for()")
                ok &= mask
            cand = np.flatnonzero(ok)
            if cand.size == 0:
                return []
            if cand.size > k:
                part = np.argpartition(-score[cand], k - 1)[:k]
                cand = cand[part]
            # stable order: score desc, then chunk id for ties
            order = sorted(cand.tolist(), key=lambda i: (-score[i], self._ids[i]))
            return [(self._ids[i], float(score[i])) for i in order]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, version: int, signature: str = "") -> None:
        """Write an atomic JSON snapshot tagged with the index version and analyzer signature."""
        with self._lock:
            data = {
                "format": SNAPSHOT_FORMAT,
                "version": version,
                "signature": signature,
                "params": [self.k1, self.b, self.epsilon],
                "tokens": self._tokens,
            }
        p = Path(path)
        tmp = p.with_suffix(p.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)

    def load(self, path: str | os.PathLike[str], *, version: int, signature: str = "") -> bool:
        """Load a snapshot if it matches `version`/`signature` and our params; False (unchanged) otherwise."""
        try:
            with open(path, encoding="utf-8") as fh:
                data: dict[str, Any] = json.load(fh)
        except (OSError, ValueError):
            return False
        if (
            data.get("format") != SNAPSHOT_FORMAT
            or data.get("version") != version
            or data.get("signature") != signature
            or data.get("params") != [self.k1, self.b, self.epsilon]
        ):
            return False
        with self._lock:
            self._tokens = {str(k): list(v) for k, v in data["tokens"].items()}
            self._dirty = True
        return True

    def stats(self) -> dict[str, Any]:
        """Size numbers for `HybridIndex.stats()`."""
        with self._lock:
            self._ensure()
            n_tokens = sum(len(t) for t in self._tokens.values())
            return {"chunks": len(self._tokens), "tokens": n_tokens, "vocabulary": len(self._postings)}
