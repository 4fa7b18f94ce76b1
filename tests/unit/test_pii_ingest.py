"""PII redaction wired into ingestion, queries and traces: stored chunks hold placeholders yet stay
searchable, the encrypted mapping holds no plaintext and restores the originals, and with
`redact_query_pii` no span of a run carries the caller's PII (neither through ask nor the raw graph)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ragroute.api import aask
from ragroute.cli import main
from ragroute.context import Context
from ragroute.runtime import caching, providers, tracing
from ragroute.tools.ingest import ingest_documents, ingest_paths, pii_store_path
from ragroute.tools.pii import KEY_ENV, PiiRedactor, generate_key
from ragroute.tools.types import Document

from tests.unit import test_tracing

langfuse_memory = test_tracing.langfuse_memory  # spans in memory (fixture shared with test_tracing)

EMAIL = "jane.roe@example.com"
PHONE = "+1 415 555 0134"
TEXT = (
    f"Escalation contacts\n\nFor billing escalations write to {EMAIL} or call {PHONE}. "
    "Escalations are answered within four business hours."
)


def doc(doc_id: str = "contacts") -> Document:
    return Document(doc_id=doc_id, text=TEXT, title="Escalation contacts", source=f"{doc_id}.md", format="md")


def stored_texts(index: Any) -> list[str]:
    return [index.get_chunk(cid).text for cid in sorted(index.chunk_ids())]


@pytest.fixture(autouse=True)
def no_cache() -> Iterator[None]:
    caching.set_cache(None)
    yield
    caching.set_cache(None)


def test_irreversible_without_a_key(make_index: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    index = make_index(empty=True)
    report = ingest_documents(index, [doc()], progress=False, redact_pii=True)
    assert report.added == ["contacts"]
    assert report.pii == {"EMAIL": 1, "PHONE": 1} and not report.pii_reversible
    assert report.to_dict()["pii"] == {"redacted": {"EMAIL": 1, "PHONE": 1}, "reversible": False}
    texts = stored_texts(index)
    assert any("<EMAIL_1>" in t and "<PHONE_1>" in t for t in texts)
    assert not any(EMAIL in t or "555" in t for t in texts)
    hits = index.search("how fast are billing escalations answered", k=3)
    assert hits and hits[0].doc_id == "contacts" and EMAIL not in hits[0].text
    assert not Path(pii_store_path(index.path)).exists()
    # the same file again is unchanged (placeholders are deterministic)
    assert ingest_documents(index, [doc()], progress=False, redact_pii=True).unchanged == ["contacts"]


def test_encrypted_mapping_has_no_plaintext_and_restores(
    make_index: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv(KEY_ENV, key)
    index = make_index(empty=True)
    report = ingest_documents(index, [doc()], progress=False, redact_pii=True)
    assert report.pii_reversible
    files = list(Path(pii_store_path(index.path)).iterdir())
    assert len(files) == 1
    raw = files[0].read_bytes()
    assert EMAIL.encode() not in raw and b"jane" not in raw and b"555" not in raw
    chunk = index.get_chunk(sorted(index.chunk_ids())[-1])
    mapping_id = chunk.metadata["pii_mapping_id"]
    restored = PiiRedactor(store_path=pii_store_path(index.path), key=key).restore(chunk.text, mapping_id)
    assert EMAIL in restored and PHONE in restored
    wrong = PiiRedactor(store_path=pii_store_path(index.path), key=generate_key())
    from ragroute.tools.errors import ConfigError

    with pytest.raises(ConfigError, match="differs"):
        wrong.restore(chunk.text, mapping_id)


def test_off_by_default_and_bad_values(make_index: Any) -> None:
    from ragroute.tools.errors import ConfigError

    index = make_index(empty=True)
    report = ingest_documents(index, [doc()], progress=False)
    assert report.pii is None and "pii" not in report.to_dict()
    assert any(EMAIL in t for t in stored_texts(index))
    with pytest.raises(ConfigError, match="redact_pii"):
        ingest_documents(index, [doc("x")], progress=False, redact_pii="yes")  # type: ignore[arg-type]


def test_cli_ingest_redact_pii(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "contacts.md").write_text(f"# Escalation contacts\n\n{TEXT}\n")
    idx = str(tmp_path / "index")
    assert main(["--index", idx, "ingest", str(folder), "--redact-pii", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pii"] == {"redacted": {"EMAIL": 1, "PHONE": 1}, "reversible": False}
    assert main(["--index", idx, "search", "billing escalations", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["results"]
    assert found and all(EMAIL not in r["text"] for r in found)
    assert any("<EMAIL_1>" in r["text"] for r in found)


def test_ingest_paths_passes_a_redactor(make_index: Any, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"Contact {EMAIL} about refunds.")
    index = make_index(empty=True)
    report = ingest_paths(index, [str(tmp_path / "a.txt")], progress=False, redact_pii=PiiRedactor(["EMAIL"]))
    assert report.pii == {"EMAIL": 1}
    assert all(EMAIL not in t for t in stored_texts(index))


# ---------------------------------------------------------------------------------------- traces


def span_text(exporter: Any) -> str:
    return " ".join(json.dumps(dict(s.attributes), default=str) for s in exporter.get_finished_spans())


QUESTION = f"I am {EMAIL}, phone {PHONE}: how long do refresh tokens last?"


async def test_ask_redacts_the_question_everywhere(make_index: Any, langfuse_memory: Any) -> None:
    client, exporter, _ = langfuse_memory
    index = make_index()
    out = await aask(QUESTION, providers=providers.Providers(index=index), redact_query_pii=True)
    client.flush()
    assert "30 days" in out["answer"]  # still answered from the redacted question
    text = span_text(exporter)
    assert exporter.get_finished_spans() and "refresh tokens" in text
    assert EMAIL not in text and "555 0134" not in text and "<EMAIL_1>" in text


async def test_raw_graph_runs_redact_spans(make_index: Any, langfuse_memory: Any) -> None:
    """The server calls the graph directly (langserve): the handler itself keeps PII out of every span."""
    from ragroute.workflow import build_graph

    client, exporter, _ = langfuse_memory
    index = make_index()
    graph = build_graph(providers.Providers(index=index)).compile(name="ragroute")
    ctx = Context(index_dir=index.path, redact_query_pii=True)
    await graph.ainvoke({"question": QUESTION}, context=ctx, config=tracing.traced_config(ctx=ctx))
    client.flush()
    text = span_text(exporter)
    assert "refresh tokens" in text and EMAIL not in text and "555 0134" not in text


async def test_without_redaction_the_trace_has_the_question(make_index: Any, langfuse_memory: Any) -> None:
    """The control: the assertions above would see the PII if redaction did nothing."""
    client, exporter, _ = langfuse_memory
    index = make_index()
    await aask(QUESTION, providers=providers.Providers(index=index))
    client.flush()
    assert EMAIL in span_text(exporter)


async def test_raw_graph_runs_retrieve_and_generate_from_the_redacted_question(make_index: Any) -> None:
    """Without ask() in front (the server), classify redacts the question for every later node."""
    from ragroute.workflow import build_graph

    index = make_index()
    graph = build_graph(providers.Providers(index=index)).compile(name="ragroute")
    seen: list[str] = []
    ctx = Context(index_dir=index.path, redact_query_pii=True)
    async for update in graph.astream({"question": QUESTION}, context=ctx, stream_mode="updates"):
        for node, data in update.items():
            if node == "classify":
                seen.append(data["question"])
            if node == "retrieve":
                seen += [r["query"] for r in data["retrievals"]]
    assert seen and all(EMAIL not in q and "<EMAIL_1>" in q for q in seen)


def test_server_can_force_query_redaction(make_index: Any) -> None:
    from ragroute.server.app import create_app
    from ragroute.server.auth import ANONYMOUS
    from ragroute.server.policy import server_configurable

    index = make_index(empty=True)
    forced = create_app(index.path, {}, index=index, tracing=False, redact_pii=True).state.settings
    assert server_configurable({"redact_query_pii": False}, ANONYMOUS, forced)["redact_query_pii"] is True
    free = create_app(index.path, {}, index=index, tracing=False).state.settings
    assert "redact_query_pii" not in server_configurable({}, ANONYMOUS, free)
    assert server_configurable({"redact_query_pii": True}, ANONYMOUS, free)["redact_query_pii"] is True


async def test_redacting_server_redacts_ingested_documents(
    make_index: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from ragroute.server.app import create_app

    monkeypatch.delenv(KEY_ENV, raising=False)
    index = make_index(empty=True)
    keys = {"w-key-000000001": {"user": "wes", "write": True, "unrestricted": True}}
    app = create_app(index.path, keys, index=index, tracing=False, redact_pii=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.post(
            "/ingest",
            json={"documents": [{"doc_id": "contacts", "text": TEXT, "title": "Escalation contacts"}]},
            headers={"X-API-Key": "w-key-000000001"},
        )
    assert r.status_code == 200 and r.json()["pii"]["redacted"] == {"EMAIL": 1, "PHONE": 1}
    assert all(EMAIL not in t for t in stored_texts(index))
