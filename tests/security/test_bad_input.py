"""Bad input never gives a 500 (issue 12): lone surrogates, invalid UTF-8, JSON nested deeper than any
parser should recurse, malformed batches and ingest items each get a clear 4xx, and in an ingest request a
bad document fails alone while the good ones are written. Real app, real index, httpx over ASGI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ragroute.server.app import create_app
from ragroute.server.guard import MAX_JSON_DEPTH
from ragroute.tools.errors import FilterError, InputError
from ragroute.tools.filters import parse_filter
from ragroute.tools.ingest import ingest_documents
from ragroute.tools.types import Document

from tests.integration.sample_index import PUBLIC_QUESTION, ingest_sample

pytestmark = pytest.mark.integration

READER = "reader-key-0001"
WRITER = "writer-key-0003"
KEYS = {
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    WRITER: {"user": "wes", "write": True, "unrestricted": True},
}
ASK_ROUTES = ["/ask/invoke", "/ask/stream", "/ask/stream_events"]


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("bad-input") / "index", embedder)
    yield index
    index.close()


@pytest.fixture(scope="module")
def app(sample_index: Any) -> Any:
    return create_app(sample_index.path, KEYS, index=sample_index, tracing=False, max_batch_inputs=4)


@pytest.fixture
async def client(app: Any) -> Any:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ragroute.test", timeout=120) as c:
        yield c


async def post_raw(client: httpx.AsyncClient, path: str, body: str | bytes, key: str = READER) -> Any:
    """POST `body` as is: json.dumps escapes a lone surrogate as \\ud800, as a client's JSON would."""
    data = body.encode() if isinstance(body, str) else body
    headers = {"X-API-Key": key, "content-type": "application/json"}
    return await client.post(path, content=data, headers=headers)


def nested(open_: str, inner: str, close: str, levels: int) -> str:
    return open_ * levels + inner + close * levels


def fill(template: str, value: str) -> str:
    """`template` with its one @ replaced by `value` (JSON text has too many braces for str.format)."""
    return template.replace("@", value)


# ---------------------------------------------------------------------------------------------- /ask/*


@pytest.mark.parametrize("path", ASK_ROUTES)
async def test_a_lone_surrogate_in_the_question_is_a_422(client: httpx.AsyncClient, path: str) -> None:
    r = await post_raw(client, path, json.dumps({"input": {"question": "\ud800 token"}}))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "input.question contains invalid unicode (a lone surrogate)"


async def test_a_lone_surrogate_in_a_batch_names_the_input(client: httpx.AsyncClient) -> None:
    body = {"inputs": [{"question": PUBLIC_QUESTION}, {"question": "tokens \udfff"}]}
    r = await post_raw(client, "/ask/batch", json.dumps(body))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "inputs[1].question contains invalid unicode (a lone surrogate)"


async def test_a_lone_surrogate_anywhere_else_in_the_body_is_a_422(client: httpx.AsyncClient) -> None:
    for body in (
        {"input": {"question": "q", "\ud800": 1}},
        {"input": {"question": "q", "filters": {"doc_type\udc00": "x"}}},
        {"input": {"question": "q"}, "config": {"configurable": {"route": "\ud800"}}},
    ):
        r = await post_raw(client, "/ask/invoke", json.dumps(body))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"]


@pytest.mark.parametrize("path", [*ASK_ROUTES, "/ask/batch", "/ingest"])
async def test_a_body_that_is_not_utf8_is_a_422(client: httpx.AsyncClient, path: str) -> None:
    question = b'{"question": "\xff"}'
    body = b'{"inputs": [' + question + b"]}" if path.endswith("batch") else b'{"input": ' + question + b"}"
    r = await post_raw(client, path, body, key=WRITER)
    assert r.status_code == 422, r.text
    assert "not valid UTF-8" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        fill('{"input": {"question": "tokens", "filters": @}}', nested('{"$and": [', '{"a": 1}', "]}", 900)),
        fill('{"input": {"question": "tokens", "filters": {"a": {"$in": @}}}}', nested("[", "", "]", 3000)),
        fill('{"input": {"question": "tokens", "filters": {"a": @}}}', nested('{"b": ', "1", "}", 900)),
        fill(
            '{"input": {"question": "tokens"}, "config": {"configurable": {"filters": @}}}',
            nested('{"$or": [', '{"a": 1}', "]}", 900),
        ),
        fill(
            '{"inputs": [{"question": "tokens", "filters": @}]}', nested('{"$and": [', '{"a": 1}', "]}", 900)
        ),
        fill('{"input": {"question": "tokens", "x": @}}', nested("[", "", "]", 100_000)),
    ],
    ids=["and-900", "in-list-3000", "object-900", "configurable-or-900", "batch-and-900", "list-100000"],
)
async def test_deeply_nested_json_is_a_422(client: httpx.AsyncClient, body: str) -> None:
    path = "/ask/batch" if body.startswith('{"inputs"') else "/ask/invoke"
    r = await post_raw(client, path, body)
    assert r.status_code == 422, r.text
    detail = f"request body nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
    assert r.json()["detail"] == detail


async def test_a_filter_a_little_too_deep_gets_the_filter_error(client: httpx.AsyncClient) -> None:
    body = fill('{"input": {"question": "tokens", "filters": @}}', nested('{"$and": [', '{"a": 1}', "]}", 40))
    r = await post_raw(client, "/ask/invoke", body)
    assert r.status_code == 422, r.text
    assert "nests deeper than 32 levels" in r.json()["detail"]


async def test_brackets_inside_strings_do_not_count_as_nesting(client: httpx.AsyncClient) -> None:
    r = await post_raw(client, "/ask/invoke", json.dumps({"input": {"question": "[{" * 500 + " tokens"}}))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"inputs": {"question": "x"}}, "inputs must be a list"),
        ({"inputs": "x"}, "inputs must be a list"),
        ({"inputs": [{"question": "x"}, "y"]}, "inputs[1] must be an object"),
        ({"inputs": [{"question": "x"}, {"question": " "}]}, "inputs[1].question must be a non-empty string"),
    ],
)
async def test_a_malformed_batch_is_a_422_naming_the_input(
    client: httpx.AsyncClient, body: dict, fragment: str
) -> None:
    r = await post_raw(client, "/ask/batch", json.dumps(body))
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]


async def test_a_batch_above_the_cap_is_a_413(client: httpx.AsyncClient) -> None:
    body = {"inputs": [{"question": f"{PUBLIC_QUESTION} {i}"} for i in range(200)]}
    r = await post_raw(client, "/ask/batch", json.dumps(body))
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == "batch has 200 inputs; the limit is 4"
    configs = {**body, "config": [{}] * 200}
    assert (await post_raw(client, "/ask/batch", json.dumps(configs))).status_code == 413
    ok = await post_raw(client, "/ask/batch", json.dumps({"inputs": body["inputs"][:2]}))
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["output"]) == 2


# ---------------------------------------------------------------------------------------------- /ingest


async def test_a_bad_json_document_fails_alone(client: httpx.AsyncClient, sample_index: Any) -> None:
    docs = [
        {"doc_id": "good-one", "text": "The Zephyr gateway retries every 7 seconds."},
        {"doc_id": "bad-text", "text": "x \ud800 y"},
        {"doc_id": "bad-\udc00-id", "text": "fine text"},
        {"doc_id": "bad-meta", "text": "fine text", "metadata": {"owner": "\ud83d"}},
        {"doc_id": "no-text"},
        {"doc_id": "good-two", "text": "The Zephyr gateway listens on port 7443."},
    ]
    r = await post_raw(client, "/ingest", json.dumps({"documents": docs}), key=WRITER)
    assert r.status_code == 200, r.text
    report = r.json()
    assert sorted(report["added"]) == ["good-one", "good-two"]
    failed = {f["source"]: f["message"] for f in report["failed"]}
    assert failed == {
        "api:bad-text": "text contains invalid unicode (a lone surrogate)",
        "api:bad-\\udc00-id": "doc_id contains invalid unicode (a lone surrogate)",
        "api:bad-meta": "metadata contains invalid unicode (a lone surrogate)",
        "documents[4]": "documents[4].text must be a non-empty string",
    }
    assert sample_index.document_hash("good-two") is not None
    assert sample_index.document_hash("bad-text") is None


async def test_when_every_document_fails_the_report_is_a_422_with_a_detail(client: httpx.AsyncClient) -> None:
    body = {"documents": [{"doc_id": "only-bad", "text": "x \ud800 y"}]}
    r = await post_raw(client, "/ingest", json.dumps(body), key=WRITER)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (
        "no document was ingested; api:only-bad: text contains invalid unicode (a lone surrogate)"
    )
    assert r.json()["counts"]["failed"] == 1


async def test_a_lone_surrogate_in_the_shared_meta_is_a_422(client: httpx.AsyncClient) -> None:
    body = {"documents": [{"doc_id": "m1", "text": "t"}], "meta": {"owner": "\ud800"}}
    r = await post_raw(client, "/ingest", json.dumps(body), key=WRITER)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "meta: metadata contains invalid unicode (a lone surrogate)"


async def test_deep_html_and_jsonl_uploads_fail_alone_or_load_flat(client: httpx.AsyncClient) -> None:
    deep_html = "<html><body><h1>Deep page</h1>" + nested("<span>", "Kestrel depth marker", "</span>", 3000)
    deep_line = fill('{"_id": "deep-line", "text": "t", "meta": @}', nested('{"a": ', "1", "}", 3000))
    deep_list = fill('{"_id": "deep-list", "text": "t", "meta": @}', nested("[", "1", "]", 500))
    jsonl = "\n".join([deep_line, deep_list, '{"_id": "fine-line", "text": "Kestrel runs on Tuesdays."}'])
    files = [
        ("files", ("deep.html", deep_html.encode(), "text/html")),
        ("files", ("records.jsonl", jsonl.encode(), "application/jsonl")),
        ("files", ("plain.txt", b"The Kestrel job archives logs nightly.", "text/plain")),
    ]
    r = await client.post("/ingest", files=files, headers={"X-API-Key": WRITER})
    assert r.status_code == 200, r.text
    report = r.json()
    assert sorted(report["added"]) == ["deep.html", "fine-line", "plain.txt"]
    failed = {f["source"]: f["message"] for f in report["failed"]}
    assert failed["upload:records.jsonl:1"].startswith("JSON nests deeper than")
    assert failed["upload:records.jsonl#deep-list"] == "metadata nests deeper than 100 levels"
    found = await client.post(
        "/ask/invoke",
        json={"input": {"question": "Kestrel depth marker"}},
        headers={"X-API-Key": WRITER},
    )
    assert found.status_code == 200 and "deep.html" in json.dumps(found.json()["output"]["retrieved"])


# ---------------------------------------------------------------------------------------------- Python API


def test_the_python_api_rejects_surrogates_and_deep_values(sample_index: Any) -> None:
    from ragroute.api import ask
    from ragroute.runtime.providers import Providers

    with pytest.raises(InputError, match="lone surrogate"):
        ask("\ud800 x", providers=Providers(index=sample_index))
    deep: Any = 1
    for _ in range(3000):
        deep = [deep]
    for flt in ({"a": {"$eq": deep}}, {"a": {"$in": deep}}, {"$and": deep}, {"a": {"$gt": deep}}):
        with pytest.raises(FilterError):
            parse_filter(flt)
    report = ingest_documents(
        sample_index,
        [
            Document(doc_id="py-\ud800", text="t"),
            Document(doc_id="py-deep", text="t", metadata={"m": deep}),
        ],
        progress=False,
        use_sidecar=False,
    )
    assert [m for _, m in report.failed] == [
        "doc_id contains invalid unicode (a lone surrogate)",
        "metadata nests deeper than 100 levels",
    ]
    assert report.failed[0][0] == "py-\\ud800"


def test_run_settings_with_a_surrogate_or_deep_nesting_are_one_line_errors(sample_index: Any) -> None:
    from ragroute.api import ask
    from ragroute.context import Context
    from ragroute.runtime.providers import Providers
    from ragroute.tools.cache import cache_key
    from ragroute.tools.errors import ConfigError

    deep: Any = 1
    for _ in range(3000):
        deep = [deep]
    providers = Providers(index=sample_index)
    with pytest.raises(ConfigError, match=r"^extra contains invalid unicode \(a lone surrogate\)$"):
        ask(PUBLIC_QUESTION, providers=providers, extra={"x": "\ud800"})
    with pytest.raises(ConfigError, match="^extra nests deeper than 100 levels$"):
        ask(PUBLIC_QUESTION, providers=providers, extra={"x": deep})
    with pytest.raises(ConfigError, match=r"^filters=\[\[\[.*\]\]\] must be a JSON object$"):
        Context(filters=deep)
    with pytest.raises(ConfigError, match="must be a list of group names$"):
        Context(user_groups=deep)
    # the cache key refuses what it cannot hash, whoever builds one
    with pytest.raises(InputError, match=r"^cache key part 'extra.x' contains invalid unicode"):
        cache_key(extra={"x": "\ud800"})
    with pytest.raises(InputError, match="^cache key part 'extra' nests deeper than 100 levels$"):
        cache_key(extra={"x": deep})
