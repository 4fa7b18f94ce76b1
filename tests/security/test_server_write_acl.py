"""Write paths of the HTTP API: a key with write access must not overwrite or delete a document it cannot
read, and a hidden document must look exactly like a missing one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from ragroute.server.app import create_app

from tests.integration.sample_index import RUNBOOK_DOC, RUNBOOK_SECRET, ingest_sample

pytestmark = pytest.mark.integration

ENG_WRITER, OPS_WRITER = "eng-writer-0001", "ops-writer-0002"
KEYS = {
    ENG_WRITER: {"user": "ed", "groups": ["eng"], "clearance": 1, "write": True},
    OPS_WRITER: {"user": "olga", "groups": ["ops"], "clearance": 2, "write": True},
}


@pytest.fixture
def index(tmp_path: Any, embedder: Any) -> Iterator[Any]:
    idx = ingest_sample(tmp_path / "index", embedder)
    yield idx
    idx.close()


@pytest.fixture
async def client(index: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(index.path, KEYS, index=index, tracing=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120
    ) as c:
        yield c


def runbook_text(index: Any) -> str:
    return " ".join(
        hit.text for hit in index.keyword_search("breakglass account", k=5) if hit.doc_id == RUNBOOK_DOC
    )


async def test_writer_cannot_overwrite_a_document_it_cannot_read(client, index):
    body = {
        "documents": [{"doc_id": RUNBOOK_DOC, "text": "# Runbook\n\nEverything is fine. Nothing to see."}]
    }
    r = await client.post("/ingest", json=body, headers={"X-API-Key": ENG_WRITER})
    assert r.status_code == 422, r.text
    assert r.json()["failed"] == [
        {"source": RUNBOOK_DOC, "message": "this API key may not write this document id"}
    ]
    assert RUNBOOK_SECRET in runbook_text(index)  # the original is untouched
    assert index.document_metadata(RUNBOOK_DOC)["access_groups"] == ["ops", "sre"]


async def test_hidden_document_deletes_like_a_missing_one(client, index):
    hidden = await client.delete(f"/documents/{RUNBOOK_DOC}", headers={"X-API-Key": ENG_WRITER})
    missing = await client.delete("/documents/no-such-doc.md", headers={"X-API-Key": ENG_WRITER})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(RUNBOOK_DOC, "X") == missing.json()["detail"].replace(
        "no-such-doc.md", "X"
    )
    assert index.document_metadata(RUNBOOK_DOC) is not None


async def test_a_writer_who_can_read_it_may_update_and_delete(client, index):
    body = {
        "documents": [
            {
                "doc_id": RUNBOOK_DOC,
                "text": "# Runbook\n\nPage the on-call SRE first.",
                "metadata": {"access_groups": ["ops"], "security_level": 2},
            }
        ]
    }
    r = await client.post("/ingest", json=body, headers={"X-API-Key": OPS_WRITER})
    assert r.status_code == 200 and r.json()["updated"] == [RUNBOOK_DOC], r.text
    assert RUNBOOK_SECRET not in runbook_text(index)
    r = await client.delete(f"/documents/{RUNBOOK_DOC}", headers={"X-API-Key": OPS_WRITER})
    assert r.status_code == 200 and index.document_metadata(RUNBOOK_DOC) is None


async def test_public_documents_stay_writable(client, index):
    body = {"documents": [{"doc_id": "faq.txt", "text": "Orbit FAQ\n\nRun history is kept for 365 days."}]}
    r = await client.post("/ingest", json=body, headers={"X-API-Key": ENG_WRITER})
    assert r.status_code == 200 and r.json()["updated"] == ["faq.txt"], r.text
