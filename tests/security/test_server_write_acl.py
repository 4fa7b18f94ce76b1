"""Write paths of the HTTP API: a key with write access must not overwrite, delete, restore or purge a
document it cannot read, live or soft-deleted, and a hidden document must look exactly like a missing one
on every endpoint (ingest, delete, restore, stats, ready)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from ragroute.server.app import create_app

from tests.integration.sample_index import RUNBOOK_DOC, RUNBOOK_SECRET, ingest_sample

pytestmark = pytest.mark.integration

ENG_WRITER, OPS_WRITER, NOGROUP_WRITER = "eng-writer-0001", "ops-writer-0002", "bare-writer-003"
ENG_READER, ADMIN = "eng-reader-0004", "admin-key-00005"
KEYS = {
    ENG_WRITER: {"user": "ed", "groups": ["eng"], "clearance": 1, "write": True},
    OPS_WRITER: {"user": "olga", "groups": ["ops"], "clearance": 2, "write": True},
    NOGROUP_WRITER: {"user": "wes", "write": True},
    ENG_READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    ADMIN: {"user": "svc", "unrestricted": True},
}
MISSING = "no-such-doc.md"


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


def same_apart_from_id(hidden: httpx.Response, missing: httpx.Response) -> None:
    """The two answers are byte-identical once each names its own id as X."""
    assert hidden.status_code == missing.status_code
    assert hidden.headers.get("content-type") == missing.headers.get("content-type")
    assert hidden.content.replace(RUNBOOK_DOC.encode(), b"X") == missing.content.replace(
        MISSING.encode(), b"X"
    )


def doc(doc_id: str, text: str = "# Runbook\n\nEverything is fine. Nothing to see.") -> dict:
    return {"documents": [{"doc_id": doc_id, "text": text}]}


async def soft_delete_runbook(client: httpx.AsyncClient, index: Any) -> None:
    r = await client.delete(f"/documents/{RUNBOOK_DOC}", headers={"X-API-Key": OPS_WRITER})
    assert r.status_code == 200 and r.json() == {"deleted": RUNBOOK_DOC, "soft": True}
    assert [d["doc_id"] for d in index.deleted_documents()] == [RUNBOOK_DOC]


@pytest.mark.parametrize("key", [ENG_WRITER, NOGROUP_WRITER])
async def test_ingest_of_a_hidden_id_answers_like_a_missing_one(client, index, key):
    hidden = await client.post("/ingest", json=doc(RUNBOOK_DOC), headers={"X-API-Key": key})
    missing = await client.post("/ingest", json=doc(MISSING), headers={"X-API-Key": key})
    same_apart_from_id(hidden, missing)
    assert hidden.status_code == 422 and "may not write" in hidden.json()["failed"][0]["message"]
    assert RUNBOOK_SECRET in runbook_text(index)  # the original is untouched
    assert index.document_metadata(RUNBOOK_DOC)["access_groups"] == ["ops", "sre"]
    assert index.document_metadata(MISSING) is None


async def test_hidden_document_deletes_and_restores_like_a_missing_one(client, index):
    for method, path in (("DELETE", "/documents/{}"), ("POST", "/documents/{}/restore")):
        for params in ({}, {"hard": "true"}):
            kw = {"headers": {"X-API-Key": ENG_WRITER}, "params": params}
            hidden = await client.request(method, path.format(RUNBOOK_DOC), **kw)
            missing = await client.request(method, path.format(MISSING), **kw)
            same_apart_from_id(hidden, missing)
            assert hidden.status_code == 404
    assert index.document_metadata(RUNBOOK_DOC) is not None


async def test_the_trash_keeps_its_acl(client, index):
    """The attack: soft delete (by ops), then a write key with no groups hard-deletes or replaces it."""
    await soft_delete_runbook(client, index)
    bare = {"X-API-Key": NOGROUP_WRITER}
    for params in ({"hard": "true"}, {"soft": "false"}, {}):
        hidden = await client.delete(f"/documents/{RUNBOOK_DOC}", params=params, headers=bare)
        missing = await client.delete(f"/documents/{MISSING}", params=params, headers=bare)
        same_apart_from_id(hidden, missing)
    hidden = await client.post("/ingest", json=doc(RUNBOOK_DOC, "# Runbook\n\nfake steps"), headers=bare)
    missing = await client.post("/ingest", json=doc(MISSING, "# Runbook\n\nfake steps"), headers=bare)
    same_apart_from_id(hidden, missing)
    hidden = await client.post(f"/documents/{RUNBOOK_DOC}/restore", headers=bare)
    missing = await client.post(f"/documents/{MISSING}/restore", headers=bare)
    same_apart_from_id(hidden, missing)
    # nothing was served under the restricted id, and the restricted document is still in the trash
    assert index.document_metadata(RUNBOOK_DOC) is None
    assert [d["doc_id"] for d in index.deleted_documents()] == [RUNBOOK_DOC]
    r = await client.post(f"/documents/{RUNBOOK_DOC}/restore", headers={"X-API-Key": OPS_WRITER})
    assert r.status_code == 200 and r.json() == {"restored": RUNBOOK_DOC}
    assert RUNBOOK_SECRET in runbook_text(index)


async def test_a_writer_who_can_read_it_may_update_delete_and_restore(client, index):
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
    await soft_delete_runbook(client, index)
    r = await client.post(f"/documents/{RUNBOOK_DOC}/restore", headers={"X-API-Key": OPS_WRITER})
    assert r.status_code == 200 and index.document_metadata(RUNBOOK_DOC) is not None
    r = await client.delete(f"/documents/{RUNBOOK_DOC}?hard=true", headers={"X-API-Key": OPS_WRITER})
    assert r.status_code == 200 and r.json() == {"deleted": RUNBOOK_DOC, "soft": False}
    assert index.document_metadata(RUNBOOK_DOC) is None and index.deleted_documents() == []


async def test_public_documents_stay_writable(client, index):
    body = {"documents": [{"doc_id": "faq.txt", "text": "Orbit FAQ\n\nRun history is kept for 365 days."}]}
    r = await client.post("/ingest", json=body, headers={"X-API-Key": ENG_WRITER})
    assert r.status_code == 200 and r.json()["updated"] == ["faq.txt"], r.text


async def test_a_restricted_writer_owns_the_ids_under_its_prefix(client, index):
    eng = {"X-API-Key": ENG_WRITER}
    body = {
        "documents": [
            {"doc_id": "ed/handover.md", "text": "# Handover\n\nThe ops pager rota.", "metadata": {}},
            {"doc_id": "olga/handover.md", "text": "# Handover\n\nnot mine"},
        ]
    }
    body["documents"][0]["metadata"] = {"access_groups": ["ops"]}  # written for a group ed is not in
    r = await client.post("/ingest", json=body, headers=eng)
    assert r.status_code == 200 and r.json()["added"] == ["ed/handover.md"], r.text
    assert [f["source"] for f in r.json()["failed"]] == ["olga/handover.md"]
    # its own id, though it cannot read it any more: it may replace and delete it
    r = await client.post("/ingest", json=doc("ed/handover.md", "# Handover\n\nv2"), headers=eng)
    assert r.status_code == 200 and r.json()["updated"] == ["ed/handover.md"], r.text
    r = await client.delete("/documents/ed/handover.md", headers=eng)
    assert r.status_code == 200 and r.json() == {"deleted": "ed/handover.md", "soft": True}


async def test_ready_says_nothing_and_stats_count_only_what_the_caller_sees(client, index):
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    reader = (await client.get("/stats", headers={"X-API-Key": ENG_READER})).json()
    bare = (await client.get("/stats", headers={"X-API-Key": NOGROUP_WRITER})).json()
    ops = (await client.get("/stats", headers={"X-API-Key": OPS_WRITER})).json()
    admin = (await client.get("/stats", headers={"X-API-Key": ADMIN})).json()
    assert reader == bare and reader["index"]["documents"] == 6 and "cache" not in reader
    assert ops["index"]["documents"] == admin["index"]["documents"] == 7 and "cache" in admin
    assert str(index.path) not in json.dumps(reader) and "version" not in reader["index"]
    await soft_delete_runbook(client, index)
    # the restricted document's soft delete changes nothing an eng caller sees
    assert (await client.get("/stats", headers={"X-API-Key": ENG_READER})).json() == reader
    ops = (await client.get("/stats", headers={"X-API-Key": OPS_WRITER})).json()
    assert ops["index"]["documents"] == 6 and ops["index"]["soft_deleted"] == 1


async def test_a_server_without_keys_is_read_only_unless_asked(index):
    from ragroute.server.auth import ANONYMOUS_WRITER

    body = doc("anonymous/note.md", "# Note\n\nThe kiosk opens at nine.")
    for app, status in (
        (create_app(index.path, {}, index=index, tracing=False), 403),
        (create_app(index.path, {}, index=index, tracing=False, anonymous=ANONYMOUS_WRITER), 200),
    ):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.post("/ingest", json=body)).status_code == status
            assert (await c.delete("/documents/faq.txt")).status_code == status
            # even when writes are allowed, a hidden id answers like a missing one
            hidden = await c.post("/ingest", json=doc(RUNBOOK_DOC))
            missing = await c.post("/ingest", json=doc(MISSING))
            same_apart_from_id(hidden, missing)
    assert RUNBOOK_SECRET in runbook_text(index)


def test_write_keys_name_the_prefix_they_own() -> None:
    from ragroute.server.auth import load_api_keys
    from ragroute.tools.errors import ConfigError

    key = "k" * 12
    assert load_api_keys({key: {"user": "ed", "write": True}})[key].owned_prefix == "ed/"
    assert load_api_keys({key: {"write": True, "namespace": "eng/"}})[key].owned_prefix == "eng/"
    with pytest.raises(ConfigError, match='needs a "user" or a "namespace"'):
        load_api_keys({key: {"write": True}})  # its prefix would be a piece of the key
    with pytest.raises(ConfigError, match="namespace"):
        load_api_keys({key: {"user": "ed", "write": True, "namespace": ""}})
