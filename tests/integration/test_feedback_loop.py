"""The feedback loop for real: ask over the sample corpus through a uvicorn server, mark the bad answers
with the right source, restart the server (ratings are on disk), export the golden set with the
`ragroute feedback export` CLI in a child process and evaluate it with `ragroute eval`; and a rating
reaching Langfuse as a score, through the SDK's real HTTP exporter to a local stand-in for Langfuse."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from ragroute.cli import main as cli_main
from ragroute.runtime import caching
from ragroute.server.app import create_app

from tests.integration.sample_index import PUBLIC_QUESTION, free_port, ingest_sample, wait_http
from tests.integration.test_langfuse_otlp import (  # noqa: F401 - the local Langfuse stand-in (fixture)
    _reset_tracing,
    langfuse_endpoint,
    use_langfuse,
)

pytestmark = pytest.mark.integration

ANA = "ana-key-000001"
BEN = "ben-key-000002"
KEYS = json.dumps(
    {
        ANA: {"user": "ana", "groups": ["eng"], "clearance": 1},
        BEN: {"user": "ben", "groups": ["eng"], "clearance": 1},
    }
)
# questions the offline generator misses on the sample corpus (it abstains), and the document that answers
MISSED = {
    "What changed in the latest release?": "release-notes-2.10.0.md",
    "How do I monitor the service?": "monitoring.html",
}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> str:
    index = ingest_sample(tmp_path_factory.mktemp("feedback-loop") / "index", embedder)
    index.close()
    return str(index.path)


@contextmanager
def serving(index_dir: str) -> Iterator[str]:
    """`ragroute serve` in this process (the app opens the index itself), on a free loopback port."""
    import uvicorn

    caching.set_cache()  # answers come from this server's runs, not an earlier server's cache
    app = create_app(index_dir, KEYS, tracing=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=60)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def ask(c: httpx.Client, key: str, question: str) -> dict[str, Any]:
    r = c.post("/ask/invoke", json={"input": {"question": question}}, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()["output"]


def test_ask_rate_restart_export_and_evaluate(index_dir: str, tmp_path: Path) -> None:
    with serving(index_dir) as url, httpx.Client(base_url=url, timeout=120) as c:
        good = ask(c, ANA, PUBLIC_QUESTION)
        assert "90 days" in good["answer"]
        r = c.post(
            "/feedback", json={"answer_id": good["answer_id"], "rating": "up"}, headers={"X-API-Key": ANA}
        )
        assert r.status_code == 200, r.text
        missed = {}
        for question, right in MISSED.items():
            out = ask(c, ANA, question)
            assert right not in {x["doc_id"] for x in out["citations"]}  # the answer to mark bad
            body = {
                "answer_id": out["answer_id"],
                "rating": "down",
                "correct_source": right,
                "comment": "see docs",
            }
            r = c.post("/feedback", json=body, headers={"X-API-Key": ANA})
            assert r.status_code == 200 and r.json()["feedback"]["correct_source"] == right, r.text
            missed[out["answer_id"]] = (question, right)
        # ben cannot rate or read ana's answers: her ids are as unknown to him as a made-up one
        theirs = c.post(
            "/feedback", json={"answer_id": good["answer_id"], "rating": "down"}, headers={"X-API-Key": BEN}
        )
        made_up = c.post(
            "/feedback", json={"answer_id": "0" * 32, "rating": "down"}, headers={"X-API-Key": BEN}
        )
        assert theirs.status_code == made_up.status_code == 404 and theirs.content == made_up.content

    with serving(index_dir) as url, httpx.Client(base_url=url, timeout=120) as c:  # a restarted server
        for answer_id, (_, right) in missed.items():
            r = c.get(f"/feedback/{answer_id}", headers={"X-API-Key": ANA})
            assert r.status_code == 200 and r.json()["feedback"]["correct_source"] == right

    golden = tmp_path / "golden.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "ragroute.cli", "--index", index_dir, "feedback", "export", "--only", "bad"]
        + ["--out", str(golden)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2 golden record(s)" in done.stderr
    records = [json.loads(line) for line in golden.read_text().splitlines()]
    assert {r["id"]: (r["question"], r["expected_sources"]) for r in records} == {
        aid: (q, [right]) for aid, (q, right) in missed.items()
    }

    # re-evaluate on the corrected questions: the golden set runs and reports
    assert (
        cli_main(
            [
                "--index",
                index_dir,
                "eval",
                str(golden),
                "--out",
                str(tmp_path / "eval"),
                "--no-chart",
                "--no-progress",
            ]
            + ["--json"]
        )
        == 0
    )
    results = json.loads(next((tmp_path / "eval").glob("*.json")).read_text())
    flat = json.dumps(results)
    assert '"queries": 2' in flat and "recall@10" in flat

    # retrain the router on them (every route is run on each question, labelled by what found the gold)
    if importlib.util.find_spec("ragroute.router_cli") is None:
        return  # `ragroute train-router` is not in this checkout yet
    model = tmp_path / "router.json"
    args = ["--index", index_dir, "train-router", str(golden), "--out", str(model), "--no-progress", "--json"]
    assert cli_main(args) == 0 and model.is_file()


async def test_a_rating_reaches_langfuse_as_a_score(
    index_dir: str,
    langfuse_endpoint: tuple[str, list[dict]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, received = langfuse_endpoint
    use_langfuse(monkeypatch, base_url)
    caching.set_cache()
    app = create_app(index_dir, KEYS)  # traced, as `ragroute serve` is with LANGFUSE_* set
    headers = {"X-API-Key": ANA}
    async with app.router.lifespan_context(app):  # its shutdown flushes spans and scores
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=120
        ) as c:
            r = await c.post("/ask/invoke", json={"input": {"question": PUBLIC_QUESTION}}, headers=headers)
            body = {"answer_id": r.json()["output"]["answer_id"], "rating": "down", "comment": "too short"}
            rated = (await c.post("/feedback", json=body, headers=headers)).json()
    assert rated["scored"] is True
    scores = [json.loads(r["body"]) for r in received if r["path"] == "/api/public/scores"]
    flat = [s for batch in scores for s in (batch if isinstance(batch, list) else [batch])]
    (feedback,) = [s for s in flat if s["name"] == "user_feedback"]
    (faithfulness,) = [s for s in flat if s["name"] == "faithfulness"]
    assert feedback["value"] == 0.0 and feedback["comment"] == "comment: too short"
    assert feedback["traceId"] == faithfulness["traceId"]  # the score sits on the answer's own trace
