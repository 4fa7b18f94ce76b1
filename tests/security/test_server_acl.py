"""Attempts through the HTTP API (agent/server/) to read the restricted runbook: the stream endpoints,
per-item batch configs, config hashes, request-body overrides of groups/clearance/index on an open
(keyless) server, and filters in the input. None may return a byte of the runbook; the ops key may."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from ragroute.server.app import create_app

from tests.integration.sample_index import RUNBOOK_DOC, RUNBOOK_QUESTION, ingest_sample

pytestmark = pytest.mark.integration

MARKERS = (
    "orbit_breakglass",
    "orbit-db-rotate",
    "orbit admin",
    "standby scheduler",
    "60 seconds",
    RUNBOOK_DOC,
)
READER, OPS, ADMIN = "reader-key-0001", "ops-key-0000002", "admin-key-00003"
KEYS = {
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    OPS: {"user": "olga", "groups": ["ops"], "clearance": 2},
    ADMIN: {"user": "svc", "unrestricted": True},
}
WIDENINGS: list[dict[str, Any]] = [
    {"configurable": {"user_groups": ["ops", "sre"], "clearance": 9}},
    {"configurable": {"user_groups": None, "clearance": None}},  # "unrestricted"
    {
        "configurable": {
            "clearance": 99,
            "filters": {"$or": [{"doc_id": RUNBOOK_DOC}, {"security_level": {"$gte": 0}}]},
        }
    },
    {"configurable": {"route": "multihop", "k_multihop": 100, "candidate_k": 200, "user_groups": ["sre"]}},
    {
        "configurable": {
            "route": "expand",
            "reranker": "none",
            "extra": {"user_groups": ["ops"], "clearance": 9},
        }
    },
]
STREAM_PATHS = ("/ask/stream", "/ask/stream_events", "/ask/invoke")


def leaked(text: str) -> list[str]:
    return [m for m in MARKERS if m.lower() in text.lower()]


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("server-acl") / "index", embedder)
    yield index
    index.close()


async def client_for(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ragroute.test", timeout=120
    ) as c:
        yield c


@pytest.fixture
async def keyed(sample_index: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for c in client_for(create_app(sample_index.path, KEYS, index=sample_index, tracing=False)):
        yield c


@pytest.fixture
async def open_server(sample_index: Any) -> AsyncIterator[httpx.AsyncClient]:
    """No API keys: every caller is anonymous and sees public documents only."""
    async for c in client_for(create_app(sample_index.path, {}, index=sample_index, tracing=False)):
        yield c


async def post(client: httpx.AsyncClient, path: str, body: dict, key: str | None) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return await client.post(path, json=body, headers=headers)


async def test_positive_control_ops_and_admin_see_the_runbook(keyed):
    for key in (OPS, ADMIN):
        r = await post(keyed, "/ask/invoke", {"input": {"question": RUNBOOK_QUESTION}}, key)
        assert r.status_code == 200 and "orbit admin" in r.text and RUNBOOK_DOC in r.text, r.text[:300]
    r = await post(keyed, "/ask/stream", {"input": {"question": RUNBOOK_QUESTION}}, OPS)
    assert r.status_code == 200 and RUNBOOK_DOC in r.text


@pytest.mark.parametrize("path", STREAM_PATHS)
@pytest.mark.parametrize("widen", WIDENINGS, ids=[json.dumps(w)[:50] for w in WIDENINGS])
async def test_keyed_reader_cannot_widen_on_any_endpoint(keyed, path, widen):
    body = {"input": {"question": RUNBOOK_QUESTION}, "config": widen}
    r = await post(keyed, path, body, READER)
    assert r.status_code in (200, 422), r.text[:300]
    assert not leaked(r.text), (path, widen, leaked(r.text))


@pytest.mark.parametrize("path", STREAM_PATHS)
@pytest.mark.parametrize("widen", WIDENINGS[:3], ids=["groups", "unrestricted", "filters"])
async def test_anonymous_callers_on_an_open_server_cannot_widen(open_server, path, widen):
    body = {"input": {"question": RUNBOOK_QUESTION, "filters": {"doc_id": {"$ne": "x"}}}, "config": widen}
    r = await post(open_server, path, body, None)
    assert r.status_code in (200, 422), r.text[:300]
    assert not leaked(r.text), (path, widen, leaked(r.text))


async def test_batch_with_per_item_configs_cannot_widen(keyed):
    inputs = [{"question": RUNBOOK_QUESTION}] * len(WIDENINGS)
    r = await post(keyed, "/ask/batch", {"inputs": inputs, "config": WIDENINGS}, READER)
    assert r.status_code in (200, 422), r.text[:300]
    assert not leaked(r.text)
    if r.status_code == 200:
        assert len(r.json()["output"]) == len(WIDENINGS)


async def test_config_hash_plus_body_config_cannot_widen(keyed):
    from langserve.lzstring import LZString

    for widen in WIDENINGS[:3]:
        config_hash = LZString.compressToEncodedURIComponent(json.dumps(widen))
        for path in ("stream", "stream_events", "invoke"):
            r = await post(
                keyed,
                f"/ask/c/{config_hash}/{path}",
                {"input": {"question": RUNBOOK_QUESTION}, "config": widen},
                READER,
            )
            assert r.status_code in (200, 422), r.text[:300]
            assert not leaked(r.text), (path, widen)


async def test_bad_or_hostile_filters_are_422_not_500(keyed):
    deep: dict[str, Any] = {"doc_id": RUNBOOK_DOC}
    for _ in range(200):
        deep = {"$and": [deep]}
    for flt in (deep, {"acl__g__ops": True}, {"doc_id": {"$regex": ".*"}}, {"access_groups__has__ops": True}):
        for path in ("/ask/invoke", "/ask/stream"):
            r = await post(keyed, path, {"input": {"question": RUNBOOK_QUESTION, "filters": flt}}, READER)
            assert r.status_code == 422, (flt if len(json.dumps(flt)) < 80 else "deep", path, r.text[:200])
            assert not leaked(r.text)
