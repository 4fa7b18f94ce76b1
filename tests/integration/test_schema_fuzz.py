"""Schemathesis fuzzes every operation in the server's own OpenAPI schema against the real app (a tmp index of
the bundled sample corpus): whatever it sends, with a writer key, a reader key, a wrong key or none, and to
a keyless server, no response is a 5xx (issue 12: bad input never gives a 500)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ragroute.server.app import create_app
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.integration.sample_index import ingest_sample

pytestmark = pytest.mark.integration

READER = "reader-key-0001"
WRITER = "writer-key-0003"
KEYS = {
    READER: {"user": "rita", "groups": ["eng"], "clearance": 1},
    WRITER: {"user": "wes", "write": True, "unrestricted": True},
}


# few examples per operation: the suite runs this by default, and every valid question runs the graph
FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
# fewer for /ingest: every accepted body is chunked, embedded and written (and kept below UPLOAD_CAP)
FUZZ_INGEST = settings(FUZZ, max_examples=6)
UPLOAD_CAP = 20_000


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("schema-fuzz") / "index", embedder)
    yield index
    index.close()


def _app(index: Any, keys: dict[str, Any]) -> Any:
    # a small batch cap keeps a fuzzed batch to a few graph runs
    return create_app(
        index.path, keys, index=index, tracing=False, max_batch_inputs=3, max_upload_bytes=UPLOAD_CAP
    )


def fuzz(app: Any, keys: list[str | None]) -> list[str]:
    """Run every operation of `app`'s schema on valid and invalid cases; the failures, one line each.

    One loop over the operations instead of `schema.parametrize()`: its lazy (fixture) form does not run
    under pytest 9, and an eager schema would build an app and an index at collection time."""
    reader = next((k for k in keys if k), None)  # a keyless server refuses any key, even to read the schema
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", app, headers={"X-API-Key": reader} if reader else {}
    )
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:
        cases = st.one_of(operation.as_strategy(mode) for mode in GenerationMode)

        @(FUZZ_INGEST if operation.path == "/ingest" else FUZZ)
        @given(case=cases, key=st.sampled_from(keys))
        def run(case: Any, key: str | None) -> None:
            case.call_and_validate(headers={"X-API-Key": key} if key else {}, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc).strip().splitlines()[0]}")
    return failures


def test_no_operation_answers_5xx_with_api_keys(sample_index: Any) -> None:
    app = _app(sample_index, KEYS)
    assert fuzz(app, [WRITER, READER, "wrong-key-00000", None]) == []


def test_no_operation_answers_5xx_without_api_keys(sample_index: Any) -> None:
    assert fuzz(_app(sample_index, {}), [None]) == []


def test_ingest_declares_its_json_and_multipart_bodies(sample_index: Any) -> None:
    """/docs can try /ingest and fuzzers send real bodies: both content types are in the schema."""
    import jsonschema
    from fastapi.testclient import TestClient
    from ragroute.server.uploads import DOCUMENT_FIELDS

    app = _app(sample_index, KEYS)
    content = app.openapi()["paths"]["/ingest"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    as_json = content["application/json"]["schema"]
    assert set(as_json["properties"]["documents"]["items"]["properties"]) == DOCUMENT_FIELDS
    assert set(content["multipart/form-data"]["schema"]["required"]) == {"files"}
    body = {"documents": [{"doc_id": "wes/fuzz-doc", "text": "A declared body.", "format": "text"}]}
    jsonschema.validate(body, as_json)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"documents": [{"doc_id": "x", "text": "t", "color": 1}]}, as_json)
    r = TestClient(app).post("/ingest", json=body, headers={"X-API-Key": WRITER})
    assert r.status_code == 200 and r.json()["counts"]["failed"] == 0, r.text
    r = TestClient(app).post(
        "/ingest",
        files=[("files", ("note.md", b"# Note\n\nA declared upload."))],
        headers={"X-API-Key": WRITER},
    )
    assert r.status_code == 200 and r.json()["counts"]["failed"] == 0, r.text
