"""POST /feedback and GET /feedback/{answer_id} on the real app (httpx over ASGI, a real index): a caller
rates and reads only answers it was given (another caller's id is a 404 byte for byte like an unknown
one), bad input is a one-line 4xx, batch and stream answers can be rated too, ratings outlive the app."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from ragroute.runtime import answer_ids
from ragroute.server.app import create_app

ALICE = "alice-key-00001"
BOB = "bob-key-0000002"  # the same scope as alice: her cached answers are served to him
ADMIN = "admin-key-00003"
KEYS = {
    ALICE: {"user": "alice", "groups": ["eng"], "clearance": 1},
    BOB: {"user": "bob", "groups": ["eng"], "clearance": 1},
    ADMIN: {"user": "root", "unrestricted": True, "write": True},
}
QUESTION = "How long do refresh tokens last?"


@pytest.fixture
async def client(index: Any) -> Any:
    app = create_app(index.path, KEYS, index=index, tracing=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120
    ) as c:
        yield c


async def ask(client: httpx.AsyncClient, key: str, question: str = QUESTION) -> dict[str, Any]:
    r = await client.post("/ask/invoke", json={"input": {"question": question}}, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()["output"]


async def rate(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    return await client.post("/feedback", json={"rating": "down", **body}, headers={"X-API-Key": key})


async def test_the_asker_rates_and_reads_its_answer(client: httpx.AsyncClient) -> None:
    out = await ask(client, ALICE)
    assert answer_ids.ANSWER_ID.match(out["answer_id"])
    r = await client.get(f"/feedback/{out['answer_id']}", headers={"X-API-Key": ALICE})
    assert r.status_code == 200 and r.json()["feedback"] is None and r.json()["question"] == QUESTION
    r = await rate(client, ALICE, answer_id=out["answer_id"], correct_source="auth-old", comment="old")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["feedback"]["rating"] == "down" and body["feedback"]["correct_source"] == "auth-old"
    assert body["scored"] is False and "caller" not in body and "scope" not in body
    r = await client.get(f"/feedback/{out['answer_id']}", headers={"X-API-Key": ALICE})
    assert r.json()["feedback"]["comment"] == "old"


async def test_another_callers_answer_is_exactly_like_a_missing_one(client: httpx.AsyncClient) -> None:
    mine = await ask(client, ALICE)
    unknown = answer_ids.new_id()
    for key in (BOB, ADMIN):  # not even an unrestricted key rates someone else's answer
        other = await rate(client, key, answer_id=mine["answer_id"])
        missing = await rate(client, key, answer_id=unknown)
        assert other.status_code == missing.status_code == 404
        assert other.content == missing.content and other.headers == missing.headers
        got = await client.get(f"/feedback/{mine['answer_id']}", headers={"X-API-Key": key})
        not_there = await client.get(f"/feedback/{unknown}", headers={"X-API-Key": key})
        assert got.status_code == not_there.status_code == 404 and got.content == not_there.content
    assert (await rate(client, ALICE, answer_id=mine["answer_id"])).status_code == 200
    # bob gets alice's cached answer as his own delivery: a new id he may rate, hers stays hers
    his = await ask(client, BOB)
    assert his["cache"]["response"] == "hit" and his["answer_id"] != mine["answer_id"]
    assert (await rate(client, BOB, answer_id=his["answer_id"], rating="up")).status_code == 200
    r = await client.get(f"/feedback/{mine['answer_id']}", headers={"X-API-Key": ALICE})
    assert r.json()["feedback"]["rating"] == "down"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"rating": "meh"}, 422, "rating"),
        ({"rating": None}, 422, "rating"),
        ({"comment": "x" * 5000}, 422, "comment"),
        ({"correct_answer": "y" * 5000}, 422, "correct_answer"),
        ({"comment": "a \ud800 b"}, 422, "comment"),
        ({"stars": 5}, 422, "stars"),
        ({"answer_id": "a" * 100}, 422, "answer_id"),
        ({"answer_id": 42}, 422, "answer_id"),
        ({"comment": "z" * 1_100_000}, 413, "limit"),
    ],
)
async def test_bad_feedback_is_a_one_line_4xx(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, detail: str
) -> None:
    out = await ask(client, ALICE)
    r = await client.post(
        "/feedback",
        content=json.dumps({"answer_id": out["answer_id"], "rating": "down", **body}),
        headers={"X-API-Key": ALICE, "content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"] and "Traceback" not in r.text


async def test_a_correct_source_the_caller_cannot_read_looks_missing(client: httpx.AsyncClient) -> None:
    out = await ask(client, ALICE)
    hidden = await rate(client, ALICE, answer_id=out["answer_id"], correct_source="salary")  # hr only
    missing = await rate(client, ALICE, answer_id=out["answer_id"], correct_source="no-such-doc")
    assert hidden.status_code == missing.status_code == 422
    assert hidden.json()["detail"].replace("salary", "X") == missing.json()["detail"].replace(
        "no-such-doc", "X"
    )
    readable = await rate(client, ALICE, answer_id=out["answer_id"], correct_source="incident")  # eng may
    assert readable.status_code == 200, readable.text


async def test_a_missing_key_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/feedback", json={"answer_id": answer_ids.new_id(), "rating": "up"})
    assert r.status_code == 401


async def test_batch_and_stream_answers_can_be_rated(client: httpx.AsyncClient) -> None:
    questions = ["Where does the office cat sleep?", "Why does hybrid search work?"]
    r = await client.post(
        "/ask/batch", json={"inputs": [{"question": q} for q in questions]}, headers={"X-API-Key": ALICE}
    )
    assert r.status_code == 200, r.text
    ids = [o["answer_id"] for o in r.json()["output"]]
    assert len(set(ids)) == 2
    for aid in ids:
        assert (await rate(client, ALICE, answer_id=aid)).status_code == 200
        assert (await rate(client, BOB, answer_id=aid)).status_code == 404
    r = await client.post(
        "/ask/stream",
        json={"input": {"question": "What rotates the signing key?"}},
        headers={"X-API-Key": ALICE},
    )
    assert r.status_code == 200
    finals = [
        json.loads(line[5:])
        for line in r.text.splitlines()
        if line.startswith("data:") and "finalize" in line
    ]
    streamed = finals[-1]["finalize"]["answer_id"]
    assert (await rate(client, ALICE, answer_id=streamed, rating="up")).status_code == 200


async def test_ratings_outlive_the_app(make_index: Any) -> None:
    index = make_index()
    index.close()  # each app below opens the folder itself, as `ragroute serve` does
    first = create_app(index.path, KEYS, tracing=False)
    transport = httpx.ASGITransport(app=first)
    async with first.router.lifespan_context(first):
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as c:
            out = await ask(c, ALICE)
            assert (
                await rate(c, ALICE, answer_id=out["answer_id"], correct_answer="30 days")
            ).status_code == 200
    second = create_app(index.path, KEYS, tracing=False)
    async with second.router.lifespan_context(second):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as c:
            r = await c.get(f"/feedback/{out['answer_id']}", headers={"X-API-Key": ALICE})
    assert r.status_code == 200 and r.json()["feedback"]["correct_answer"] == "30 days"


async def test_openai_compatible_answers_carry_their_id(client: httpx.AsyncClient) -> None:
    question = {"role": "user", "content": "Where does the office cat sleep?"}
    body = {"model": "ragroute", "messages": [question]}
    r = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 200, r.text
    answer_id = r.json()["ragroute"]["answer_id"]
    assert (await rate(client, ALICE, answer_id=answer_id, rating="up")).status_code == 200
    assert (await rate(client, BOB, answer_id=answer_id)).status_code == 404
