"""Conversations over HTTP (issue 14): POST /threads/{id}/ask on the real app with API keys and a real
sample index; a follow-up is condensed with the caller's own thread, and a thread id is scoped per caller
(another key sending the same id starts its own thread and cannot read or delete the first one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ragroute.server.app import create_app

from tests.integration.sample_index import ingest_sample

pytestmark = pytest.mark.integration

ALICE, BOB = "alice-key-00001", "bob-key-0000002"
KEYS = {ALICE: {"user": "alice"}, BOB: {"user": "bob"}}
FIRST = "What is the default task timeout in version 2.10.0?"
FOLLOW_UP = "And what about version 2.9.1?"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("threads") / "index", embedder)
    yield create_app(index.path, KEYS, index=index, tracing=False)
    index.close()


@pytest.fixture
async def client(app: Any) -> Any:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ragroute.test", timeout=120
    ) as c:
        yield c


async def turn(
    client: httpx.AsyncClient, key: str, thread: str, question: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/threads/{thread}/ask", json={"question": question, **body}, headers={"X-API-Key": key}
    )


async def test_a_follow_up_over_http_uses_the_callers_own_thread(client: httpx.AsyncClient) -> None:
    first = await turn(client, ALICE, "c1", FIRST, config={"configurable": {"reranker": "none"}})
    assert first.status_code == 200, first.text
    assert first.json()["citations"][0]["doc_id"] == "release-notes-2.10.0.md"
    follow = await turn(client, ALICE, "c1", FOLLOW_UP)
    assert follow.status_code == 200, follow.text
    assert follow.json()["citations"][0]["doc_id"] == "release-notes-2.9.1.md"
    assert "1 hour" in follow.json()["answer"]

    # bob sends the same thread id: his own, empty thread (nothing to condense the follow-up with)
    bobs = await turn(client, BOB, "c1", FOLLOW_UP)
    assert bobs.status_code == 200 and "release-notes-2.9.1.md" not in {
        c["doc_id"] for c in bobs.json()["citations"][:1]
    }
    alices = (await client.get("/threads/c1", headers={"X-API-Key": ALICE})).json()["history"]
    assert [m["content"] for m in alices if m["role"] == "user"] == [FIRST, FOLLOW_UP]
    assert alices[2]["standalone"] == "What is the default task timeout in version 2.9.1?"
    bob_sees = (await client.get("/threads/c1", headers={"X-API-Key": BOB})).json()["history"]
    assert [m["content"] for m in bob_sees if m["role"] == "user"] == [FOLLOW_UP]

    # bob forgets his thread; alice's thread of the same id is untouched
    assert (await client.delete("/threads/c1", headers={"X-API-Key": BOB})).status_code == 204
    assert (await client.get("/threads/c1", headers={"X-API-Key": BOB})).status_code == 404
    assert (await client.delete("/threads/c1", headers={"X-API-Key": BOB})).status_code == 404
    assert len((await client.get("/threads/c1", headers={"X-API-Key": ALICE})).json()["history"]) == 4


async def test_thread_mistakes_are_one_line_4xx(client: httpx.AsyncClient) -> None:
    missing = await client.get("/threads/never-used", headers={"X-API-Key": ALICE})
    assert missing.status_code == 404 and missing.json() == {"detail": "no thread 'never-used'"}
    assert (await client.get("/threads/c1")).status_code == 401  # no key
    for body, why in [
        ({"question": "  "}, "question must be a non-empty string"),
        ({"question": "hi", "extra": 1}, "extra"),
        ({"question": "hi", "config": {"configurable": {"nope": 1}}}, "nope"),
    ]:
        r = await client.post("/threads/c2/ask", json=body, headers={"X-API-Key": ALICE})
        assert r.status_code == 422 and why in r.json()["detail"], r.text
    long_id = await turn(client, ALICE, "x" * 201, FIRST)
    assert long_id.status_code == 422 and "at most 200" in long_id.json()["detail"]
    control = await client.get("/threads/a%00b", headers={"X-API-Key": ALICE})
    assert control.status_code == 422 and "printable" in control.json()["detail"]
    bad_setting = await turn(client, ALICE, "c2", FIRST, config={"configurable": {"k_simple": "many"}})
    assert bad_setting.status_code == 422, bad_setting.text
