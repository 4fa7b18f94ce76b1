"""GET /metrics on a real uvicorn server: a scrape after a few questions, parsed with prometheus_client's
parser, shows the request, node, retrieval, answer and cache counters moved by exactly what was asked;
who may scrape (an unrestricted key; anyone on a keyless server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from ragroute.server.app import create_app

from tests.integration.sample_index import PUBLIC_QUESTION, free_port, ingest_sample, wait_http

pytestmark = pytest.mark.integration

READER = "reader-key-0001"
ADMIN = "admin-key-00002"
KEYS = {
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    ADMIN: {"user": "ops-scraper", "unrestricted": True},
}
QUESTIONS = [  # distinct: each runs the graph once (no response-cache hit)
    PUBLIC_QUESTION,
    "How often are database backups taken?",
    "What is the boiling point of tungsten on Jupiter?",
]
NODES_EVERY_RUN = ("classify", "rerank", "prune", "generate", "verify", "finalize")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape keyed by (sample name, labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: dict, name: str, **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in scrape.items() if n == name and want <= lab)


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("metrics") / "index", embedder)
    yield index
    index.close()


@pytest.fixture(scope="module")
def live_url(sample_index: Any) -> Iterator[str]:
    import uvicorn

    app = create_app(sample_index.path, KEYS, index=sample_index, tracing=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", timeout=30)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def scrape(url: str) -> dict:
    # Prometheus sends its credentials as a Bearer token (scrape_config `authorization`)
    r = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def test_counters_move_by_what_was_asked(live_url: str) -> None:
    before = scrape(live_url)
    outputs = []
    with httpx.Client(base_url=live_url, timeout=120, headers={"X-API-Key": READER}) as c:
        for q in QUESTIONS:
            r = c.post("/ask/invoke", json={"input": {"question": q}})
            assert r.status_code == 200, r.text
            outputs.append(r.json()["output"])
        again = c.post("/ask/invoke", json={"input": {"question": QUESTIONS[0]}})  # a response-cache hit
        assert again.json()["output"]["cache"]["response"] == "hit"
        assert c.post("/ask/invoke", json={"input": {"question": ""}}).status_code == 422
        assert c.get("/documents/no-such-doc").status_code in (404, 405)
        assert c.get("/no/such/route/8f3a").status_code == 404
    assert httpx.post(f"{live_url}/ask/invoke", json={"input": {"question": "x"}}).status_code == 401
    after = scrape(live_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    runs = len(QUESTIONS)
    assert moved("ragroute_http_requests_total", method="POST", route="/ask/invoke", status="200") == runs + 1
    assert moved("ragroute_http_requests_total", route="/ask/invoke", status="422") == 1
    assert moved("ragroute_http_requests_total", route="/ask/invoke", status="401") == 1
    assert moved("ragroute_http_requests_total", route="unmatched", status="404") == 1
    assert moved("ragroute_http_requests_total", route="/documents/{doc_id:path}") == 1  # not the id
    assert moved("ragroute_http_request_duration_seconds_count", route="/ask/invoke") == runs + 3
    assert value(after, "ragroute_http_requests_in_progress") == 1  # the scrape itself
    for node in NODES_EVERY_RUN:  # the cache hit ran no node
        assert moved("ragroute_node_duration_seconds_count", node=node) >= runs, node
    assert moved("ragroute_node_duration_seconds_count", node="classify") == runs
    assert moved("ragroute_node_duration_seconds_count", node="finalize") == runs
    assert moved("ragroute_node_duration_seconds_sum", node="retrieve") > 0
    searches = moved("ragroute_node_duration_seconds_count", node="retrieve")
    # one observation per search: every retrieve run, plus the hop-2 searches a multihop route makes
    retrievals = moved("ragroute_retrieval_hits_count")
    assert searches >= runs and retrievals >= searches
    assert moved("ragroute_retrieval_top_score_count") == retrievals
    assert moved("ragroute_documents_per_query_count") == runs
    assert moved("ragroute_documents_per_query_sum") == sum(o["k"] for o in outputs)
    assert moved("ragroute_answers_total") == runs
    assert moved("ragroute_abstentions_total") == sum(bool(o["abstained"]) for o in outputs)
    assert moved("ragroute_llm_tokens_total") == 0  # the offline generator uses no LLM
    assert moved("ragroute_cache_hits_total", level="responses") == 1
    assert moved("ragroute_cache_misses_total", level="responses") == runs


def test_scrape_needs_an_unrestricted_key(live_url: str) -> None:
    assert httpx.get(f"{live_url}/metrics").status_code == 401
    restricted = httpx.get(f"{live_url}/metrics", headers={"X-API-Key": READER})
    assert restricted.status_code == 403 and "unrestricted" in restricted.json()["detail"]
    assert "ragroute_" not in restricted.text
    assert httpx.get(f"{live_url}/metrics", headers={"X-API-Key": ADMIN}).status_code == 200


async def test_keyless_server_metrics_are_open_and_per_app(sample_index: Any) -> None:
    apps = [create_app(sample_index.path, {}, index=sample_index, tracing=False) for _ in range(2)]
    texts = []
    for n, app in enumerate(apps):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            for _ in range(n + 1):
                assert (await c.get("/health")).status_code == 200
            r = await c.get("/metrics")
            assert r.status_code == 200
            texts.append(samples(r.text))
    # each app counts its own requests: one registry per app, not the process-global one
    assert [value(t, "ragroute_http_requests_total", route="/health") for t in texts] == [1, 2]
