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


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Any]:
    index = ingest_sample(tmp_path_factory.mktemp("schema-fuzz") / "index", embedder)
    yield index
    index.close()


def _app(index: Any, keys: dict[str, Any]) -> Any:
    # a small batch cap keeps a fuzzed batch to a few graph runs
    return create_app(index.path, keys, index=index, tracing=False, max_batch_inputs=3)


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

        @FUZZ
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
