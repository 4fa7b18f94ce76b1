"""Two `ragroute serve` replicas on one Milvus index (a real `milvus-lite server`), each its own process
with its own local state folder: a write through either replica is seen by the other at once (Strong
consistency), a delete through one is gone on the other, the other replica's answer cache never serves a
stale answer after a write, and SIGKILLing a replica mid-request loses no acknowledged write and leaves no
half-written document.

The tests run in order on the module's two replicas; the last one kills replica 1.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.sample_index import free_port, wait_http
from tests.integration.test_milvus_consistency import (
    RAGROUTE,
    ROOT,
    body,
    child_env,
    milvus_lite_server,
    open_url,
    stop,
    whole_documents,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WRITER = "writer-key-0001"
READER = "reader-key-0002"
KEYS = {
    WRITER: {"user": "wes", "write": True, "unrestricted": True},
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
}
Q = "How long do Zorblax tokens last?"


class Replica:
    """One `ragroute serve` process on loopback."""

    def __init__(self, url: str, state: Path, keys_file: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(state.with_suffix(".log"), "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [RAGROUTE, "serve", "--index", url, "--host", "127.0.0.1", "--port", str(self.port)]
            + ["--api-keys", str(keys_file), "--log-level", "warning"],
            cwd=ROOT,
            env=child_env(state),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def post(self, path: str, payload: dict[str, Any], key: str = WRITER) -> httpx.Response:
        return httpx.post(self.base + path, json=payload, headers={"X-API-Key": key}, timeout=300)

    def ask(self, question: str = Q, key: str = READER) -> dict[str, Any]:
        r = self.post("/ask/invoke", {"input": {"question": question}}, key)
        assert r.status_code == 200, r.text
        return dict(r.json()["output"])

    def ingest(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        r = self.post("/ingest", {"documents": docs})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def delete(self, doc_id: str) -> httpx.Response:
        return httpx.delete(f"{self.base}/documents/{doc_id}", headers={"X-API-Key": WRITER}, timeout=120)

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[dict[str, Any]]:
    """A milvus-lite server, two serve replicas on `milvus://HOST:PORT/replicas`, and a third handle on the
    same index in this process (to look at what is stored)."""
    tmp = tmp_path_factory.mktemp("replicas")
    keys_file = tmp / "keys.json"
    keys_file.write_text(json.dumps(KEYS))
    with milvus_lite_server(tmp / "milvus") as where:
        url = f"milvus://{where}/replicas"
        index = open_url(url, tmp / "state0", embedder)  # creates the collections before the replicas
        replicas = [Replica(url, tmp / f"state{n}", keys_file) for n in (1, 2)]
        try:
            for r in replicas:
                wait_http(f"{r.base}/ready", timeout=600, proc=r.proc)
            yield {"r1": replicas[0], "r2": replicas[1], "index": index}
        finally:
            for r in replicas:
                r.stop()
            index.close()


def doc(doc_id: str, minutes: int) -> dict[str, Any]:
    return {
        "doc_id": doc_id,
        "title": "Zorblax token lifetime",
        "text": f"Zorblax tokens expire after {minutes} minutes. Refresh them with the zorblax CLI.",
    }


def cited(out: dict[str, Any]) -> set[str]:
    return {c["doc_id"] for c in out["citations"]}


def test_a_write_on_one_replica_is_read_on_the_other_at_once(cluster: dict[str, Any]) -> None:
    r1, r2 = cluster["r1"], cluster["r2"]
    assert r1.ingest([doc("zorblax", 42)])["added"] == ["zorblax"]
    out = r2.ask()  # no wait: reads are Strong, so the acknowledged write is visible everywhere
    assert "zorblax" in cited(out) and "42 minutes" in out["answer"]
    assert any(cid.startswith("zorblax") for cid in out["retrieved"])
    # a restricted document written on replica 2 stays hidden from a caller without the group on replica 1
    secret = {**doc("zorblax-ops", 9), "metadata": {"access_groups": ["ops"], "security_level": 1}}
    assert r2.ingest([secret])["added"] == ["zorblax-ops"]
    assert "zorblax-ops" not in cited(r1.ask()) and "zorblax-ops" in {
        d["doc_id"] for d in cluster["index"].list_documents()
    }


def test_a_delete_on_one_replica_is_gone_on_the_other(cluster: dict[str, Any]) -> None:
    r1, r2 = cluster["r1"], cluster["r2"]
    assert r1.ingest([doc("zorblax-old", 60)])["added"] == ["zorblax-old"]
    assert r2.delete("zorblax-old").json() == {"deleted": "zorblax-old", "soft": True}
    out = r1.ask("Zorblax tokens expire after 60 minutes?")
    assert not any(cid.startswith("zorblax-old") for cid in out["retrieved"] + out["contexts"])
    r = r1.post("/documents/zorblax-old/restore", {})
    assert r.json() == {"restored": "zorblax-old"}
    assert "zorblax-old" in {d["doc_id"] for d in cluster["index"].list_documents()}
    assert r2.delete("zorblax-old").status_code == 200  # and back to the trash for the next tests


def test_a_write_on_one_replica_invalidates_the_others_cached_answers(cluster: dict[str, Any]) -> None:
    r1, r2 = cluster["r1"], cluster["r2"]
    first, again = r2.ask(), r2.ask()
    assert again["cache"]["response"] == "hit" and again["answer"] == first["answer"]
    assert "42 minutes" in again["answer"]
    assert r1.ingest([doc("zorblax", 7)])["updated"] == ["zorblax"]
    after = r2.ask()  # replica 2 never saw the write; it reads the index version from Milvus
    assert after["cache"]["response"] == "miss"
    assert "7 minutes" in after["answer"] and "42 minutes" not in after["answer"]
    assert r2.ask()["cache"]["response"] == "hit"  # and caches again at the new version
    # what every cache lookup pays for that: one Strong read of the version from Milvus
    started, reads = time.perf_counter(), 50
    versions = {cluster["index"].version for _ in range(reads)}
    assert len(versions) == 1
    print(f"version read from milvus-lite server: {(time.perf_counter() - started) / reads * 1000:.1f} ms")


def test_sigkill_of_a_replica_mid_request_loses_no_acknowledged_write(cluster: dict[str, Any]) -> None:
    r1, r2, index = cluster["r1"], cluster["r2"], cluster["index"]
    acked = [f"acked{i}" for i in range(3)]
    for doc_id in acked:
        item = {"doc_id": doc_id, "text": body(doc_id, "k1", 2), "format": "markdown"}
        assert r1.ingest([{**item, "metadata": {"marker": "k1"}}])["added"] == [doc_id]
    # one request with more documents than ingest writes per batch: kill replica 1 between two batches
    big = [
        {"doc_id": f"big{i:03d}", "text": body(f"big{i:03d}", "k2", 2), "format": "markdown"}
        | {"metadata": {"marker": "k2"}}
        for i in range(100)
    ]
    before = index.version
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            outcome["response"] = r1.post("/ingest", {"documents": big})
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 500
    while index.version == before and sender.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender.is_alive(), f"the request ended before the kill: {outcome}"
    stop(r1.proc, sig=signal.SIGKILL)
    sender.join(60)
    assert "error" in outcome, outcome  # the caller got no acknowledgement
    assert set(whole_documents(index, "acked").values()) == {"k1"}  # every acknowledged write is whole
    landed = set(whole_documents(index, "big"))  # the killed request's documents: whole or absent
    assert 0 < len(landed) < len(big), "the kill did not land mid-request"
    # replica 2 serves on: it finds every acknowledged document and the killed request's whole ones
    for doc_id in [*acked, sorted(landed)[0]]:
        out = r2.ask(f"This is part 1 of {doc_id}, mark", key=WRITER)
        assert any(cid.startswith(doc_id) for cid in out["retrieved"]), doc_id
