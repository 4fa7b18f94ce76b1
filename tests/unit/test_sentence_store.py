"""Sentence vectors stored at ingest: they come out of the chunk's own forward pass (late chunking), the
offline reranker reads them instead of calling the model, they stay close to what the model computes for the
sentence alone, and they follow the documents (update, delete, disabled, backfill)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from ragroute.runtime import caching, providers
from ragroute.tools.errors import ConfigError
from ragroute.tools.index import HybridIndex, IndexConfig
from ragroute.tools.index import sentences as S
from ragroute.tools.ingest import ingest_documents
from ragroute.tools.rerankers import MaxSimReranker

from tests.conftest import TINY_CORPUS, corpus_batch

QUERY = "How long do access tokens last before they expire?"


@pytest.fixture(autouse=True)
def fresh_lru() -> Iterator[None]:
    caching.set_cache(None)  # an empty embedding LRU: every text reaches the store or the model
    yield
    caching.set_cache(None)


@pytest.fixture
def model_calls(embedder: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the shared MiniLM model embeds from now on."""
    seen: list[str] = []
    real, real_spans = embedder.embed_documents, embedder.embed_with_spans

    def counting(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return real(texts)

    def counting_spans(texts: list[str], spans: list[list[tuple[int, int]]]) -> Any:
        seen.extend(texts)
        return real_spans(texts, spans)

    monkeypatch.setattr(embedder, "embed_documents", counting)
    monkeypatch.setattr(embedder, "embed_with_spans", counting_spans)
    return seen


def stored_doc_ids(index: HybridIndex) -> set[str]:
    return index.backend.docstore.sentence_doc_ids()


def all_sentences(index: HybridIndex, doc_id: str | None = None) -> list[str]:
    out = []
    for cid in sorted(index.chunk_ids()):
        chunk = index.get_chunk(cid)
        if doc_id is None or chunk.doc_id == doc_id:
            out += S.chunk_sentences(chunk.text, chunk.metadata)
    return out


def test_embed_with_spans_gives_the_document_vectors_and_one_per_span(embedder: Any) -> None:
    texts = ["Access tokens expire after 15 minutes. Refresh tokens last 30 days.", "word " * 400 + "end."]
    n = len(texts[0])
    spans = [[(0, 38), (39, n), (0, 0)], [(0, 4), (len(texts[1]) - 4, len(texts[1]))]]
    docs, pooled = embedder.embed_with_spans(texts, spans)
    ref = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    assert all(float(np.dot(d, r)) > 0.999 for d, r in zip(docs, ref, strict=True))
    first, second, empty = pooled[0]
    assert empty is None  # no token inside
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5 and float(first @ second) < 0.99
    alone = np.asarray(embedder.embed_documents(["Access tokens expire after 15 minutes."]))[0]
    assert float(first @ alone) > float(second @ alone)
    assert pooled[1][0] is not None and pooled[1][1] is None  # past max_seq_length: never read


def test_ingest_stores_a_vector_per_sentence_close_to_the_model_on_its_own(
    make_index: Any, embedder: Any
) -> None:
    index = make_index()
    texts = sorted(set(all_sentences(index)))
    assert index.stats()["sentence_vectors"] == len(texts) > len(index.chunk_ids())
    stored = index.sentence_vectors([S.sentence_key(S.SENTENCE_MODEL, t) for t in texts])
    got = np.stack([stored[S.sentence_key(S.SENTENCE_MODEL, t)] for t in texts])
    live = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    sims = got @ live.T  # stored vector of sentence i against the model's vector of sentence j
    assert (sims.argmax(axis=1) == np.arange(len(texts))).all()
    assert float(np.diag(sims).min()) > 0.6
    # headings are part of the embedded text, as the reranker embeds it
    assert any(t.startswith("Authentication guide") for t in texts)


def test_maxsim_rerank_only_embeds_the_query(make_index: Any, model_calls: list[str]) -> None:
    index = make_index()
    hits = [h.to_dict() for h in index.search(QUERY, 5)]
    model_calls.clear()
    ranked = MaxSimReranker(providers.embedder()).rerank(QUERY, hits)
    assert model_calls == [QUERY]
    assert ranked[0]["doc_id"] == "auth" and len(ranked) == len(hits)


def test_reranking_from_stored_vectors_agrees_with_embedding_per_query(make_index: Any) -> None:
    index = make_index()
    hits = [h.to_dict() for h in index.search(QUERY, 6)]
    from_store = MaxSimReranker(providers.embedder()).rerank(QUERY, hits)
    index.close()  # unregistered: the same rerank now computes every sentence
    caching.set_cache(None)
    computed = MaxSimReranker(providers.embedder()).rerank(QUERY, hits)
    assert {h["chunk_id"] for h in from_store} == {h["chunk_id"] for h in computed}
    assert from_store[0]["chunk_id"] == computed[0]["chunk_id"] == "auth::c0"


def test_update_reuses_unchanged_sentences_and_delete_drops_them(
    make_index: Any, model_calls: list[str]
) -> None:
    index = make_index()
    before = index.stats()["sentence_vectors"]
    doc_id, title, text, meta = TINY_CORPUS[0]
    changed = text + "\n\nService accounts use long-lived keys instead of tokens."
    model_calls.clear()
    index.upsert_documents(corpus_batch([(doc_id, title, changed, meta)]))
    new_sentence = [t for t in all_sentences(index, doc_id) if "Service accounts" in t]
    assert new_sentence and set(S.lookup(S.SENTENCE_MODEL, new_sentence)) == set(new_sentence)
    # only the new chunk is read by the model: its sentence vector comes from that same pass
    assert len(model_calls) == 1 and "Access tokens expire" not in model_calls[0]
    assert index.stats()["sentence_vectors"] == before + 1
    index.delete_document(doc_id)
    assert doc_id not in stored_doc_ids(index)
    assert not index.sentence_vectors([S.sentence_key(S.SENTENCE_MODEL, new_sentence[0])])


def test_disabled_then_backfilled_by_the_next_ingest(tmp_path: Any, embedder: Any) -> None:
    path = str(tmp_path / "idx")
    with HybridIndex(IndexConfig(path=path, sentence_vectors=False), embedder=embedder) as index:
        index.upsert_documents(corpus_batch())
        assert index.stats()["sentence_vectors"] == 0
        # this index holds none (S.lookup would also read other open indexes of the test process)
        keys = [S.sentence_key(S.SENTENCE_MODEL, t) for t in all_sentences(index)]
        assert keys and not index.sentence_vectors(keys)
    with HybridIndex(IndexConfig(path=path), embedder=embedder) as index:
        assert index.stats()["sentence_vectors"] == 0  # opening does not read every chunk again
        assert ingest_documents(index, [], progress=False).added == []  # any ingest fills them in
        texts = all_sentences(index)
        assert index.stats()["sentence_vectors"] == len(set(texts))
        assert index.backfill_sentences() == 0  # once
        assert set(S.lookup(S.SENTENCE_MODEL, texts)) == set(texts)
        assert stored_doc_ids(index) == {d for d, *_ in TINY_CORPUS}
    with pytest.raises(ConfigError, match="sentence_vectors"):
        IndexConfig(path=path, sentence_vectors="yes")  # type: ignore[arg-type]


class HashEmbedder:
    """A deterministic stand-in with another name: its index must not store MiniLM sentence vectors."""

    name = "hash-embedder"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        rng = np.random.default_rng(abs(hash(text)) % 2**32)
        v = rng.normal(size=16)
        return (v / np.linalg.norm(v)).tolist()


def test_other_embedders_store_no_sentence_vectors(tmp_path: Any) -> None:
    with HybridIndex(IndexConfig(path=str(tmp_path / "idx")), embedder=HashEmbedder()) as index:
        index.upsert_documents(corpus_batch())
        assert index.stats()["sentence_vectors"] == 0
        assert S.lookup("hash-embedder", ["anything"]) == {}
