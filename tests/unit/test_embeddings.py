"""Embedders: offline MiniLM, spec parsing, caching, LangChain/Chroma adapters."""

from __future__ import annotations

import math
import os

import pytest
from ragroute.tools.embeddings import (
    ChromaEmbeddingFunction,
    Embedder,
    LangChainEmbedder,
    get_embedder,
    minilm_path,
    to_langchain,
)
from ragroute.tools.errors import ConfigError, ProviderError


def cos(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_minilm_is_offline_normalized_and_semantic(embedder):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert isinstance(embedder, Embedder)
    q = embedder.embed_query("How do I reset my password?")
    docs = embedder.embed_documents(["Steps to change a forgotten password", "Recipe for banana bread"])
    assert len(q) == 384 and len(docs) == 2
    assert math.isclose(sum(x * x for x in q), 1.0, rel_tol=1e-4)
    assert cos(q, docs[0]) > cos(q, docs[1]) + 0.2
    assert embedder.embed_documents([]) == []


def test_factory_caches_per_spec(embedder):
    assert get_embedder("minilm") is embedder
    assert get_embedder(f"hf:{minilm_path()}") is get_embedder(f"hf:{minilm_path()}")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("openai", "unknown embedding spec 'openai'; options"),
        ("hf:", "needs a model directory"),
        ("hf:/no/such/dir", "not found"),
        ("langchain:nope", "must look like"),
        ("langchain:no_such_module_xyz:Cls", "cannot import"),
        ("langchain:json:NoSuchClass", "has no 'NoSuchClass'"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        get_embedder(spec)


class EightDims:
    """A LangChain-shaped embeddings class constructible without arguments (for the spec test)."""

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        return [float(len(text) % (i + 2)) for i in range(8)]


def test_langchain_spec_and_adapters(embedder):
    wrapped = get_embedder(f"langchain:{__name__}:EightDims")
    assert isinstance(wrapped, LangChainEmbedder)
    assert wrapped.embed_query("abc") == EightDims().embed_query("abc")
    assert len(wrapped.embed_documents(["a", "b"])) == 2
    lc = to_langchain(embedder)
    from langchain_core.embeddings import Embeddings

    assert isinstance(lc, Embeddings)
    assert lc.embed_query("hello") == pytest.approx(embedder.embed_query("hello"))
    fn = ChromaEmbeddingFunction(embedder)
    assert fn(["hello"])[0] == pytest.approx(embedder.embed_query("hello"))


def test_langchain_failures_become_provider_errors():
    class Broken:
        def embed_documents(self, texts):
            raise RuntimeError("quota")

        def embed_query(self, text):
            raise RuntimeError("quota")

    with pytest.raises(ProviderError, match="quota"):
        LangChainEmbedder(Broken(), name="broken").embed_query("x")
    with pytest.raises(ConfigError, match="expected a LangChain Embeddings"):
        LangChainEmbedder(object(), name="bad")


def test_precision_setting_is_validated(monkeypatch):
    from ragroute.tools.embeddings import resolve_precision

    monkeypatch.setenv("RAGROUTE_EMBED_PRECISION", "fp32")
    assert resolve_precision() == "fp32"
    assert resolve_precision("bf16") == "bf16"
    monkeypatch.setenv("RAGROUTE_EMBED_PRECISION", "fp8")
    with pytest.raises(ConfigError, match="fp8"):
        resolve_precision()


def test_bf16_embeddings_agree_with_fp32(embedder, monkeypatch):
    texts = ["Access tokens expire after 15 minutes.", "Reciprocal rank fusion combines rankings.", "x" * 300]
    before = embedder.precision
    try:
        embedder.precision = "fp32"
        full = embedder.embed_documents(texts)
        embedder.precision = "bf16"
        half = embedder.embed_documents(texts)
    finally:
        embedder.precision = before
    for a, b in zip(full, half, strict=True):
        assert cos(a, b) > 0.999
        assert abs(math.fsum(x * x for x in b) - 1.0) < 1e-3
